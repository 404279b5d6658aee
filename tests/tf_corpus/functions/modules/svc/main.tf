locals {
  cfg = jsondecode(file("${path.module}/limits.json"))
}

output "limit" {
  value = local.cfg.load
}

output "where" {
  value = "read from ${path.module}/limits.json"
}
