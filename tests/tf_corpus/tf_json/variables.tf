# Written in the native syntax; the rest of this directory is Terraform's JSON syntax.
variable "env" {
  type    = string
  default = "prod"
}
