variable "index" {
  type = number
}

output "name" {
  value = element(["checkout", "cart"], var.index)
}
