# A naming module in the style of the label modules public monitor libraries depend on: its object `for`
# expressions break a long value across lines, which Terraform accepts anywhere inside a `for`.
variable "parts" {
  type = map(string)
}

variable "case" {
  type    = string
  default = "lower"
}

locals {
  cased = { for k, v in var.parts : k => var.case == "upper" ? upper(v) :
    var.case == "title" ? title(v) :
    lower(v)
  }

  # A filter spread over lines, with comments inside the expression.
  present = {
    for k, v in local.cased : k => v # keep the value
    # drop the empty ones
    if v != ""
  }

  tags = [for k in sort(keys(local.present)) : "${k}:${local.present[k]}"]
}

output "id" {
  value = join("-", [for k in sort(keys(local.present)) : local.present[k]])
}

output "tags" {
  value = local.tags
}
