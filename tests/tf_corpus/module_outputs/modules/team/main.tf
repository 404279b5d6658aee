variable "name" {}
variable "handle" {}

output "notify" {
  value = "${var.handle} (team ${var.name})"
}
