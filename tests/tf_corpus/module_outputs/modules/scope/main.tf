variable "env" {}

locals {
  filter = "env:${var.env}"
}

output "filter" {
  value = local.filter
}

output "tags" {
  value = ["env:${var.env}", "managed:terraform"]
}
