module "api" {
  source  = "../.."
  service = "api"
}

module "web" {
  source  = "../../"
  service = "web"
  thresholds = {
    critical = 8
    warning  = 4
  }
}
