variable "cluster_arn" {
  description = "ECS cluster the agent runs on (one task per container instance)."
  type        = string
  default     = "arn:aws:ecs:us-east-1:123456789012:cluster/production"
}

variable "image" {
  description = "kelpie agent image (built by scripts/build-image.sh or ./Dockerfile and pushed to your registry)."
  type        = string
  default     = "123456789012.dkr.ecr.us-east-1.amazonaws.com/kelpie:latest"
}

variable "api_key_secret_arn" {
  description = "Secrets Manager secret (or SSM parameter) ARN holding the Datadog API key."
  type        = string
  default     = "arn:aws:secretsmanager:us-east-1:123456789012:secret:kelpie/datadog-api-key-AbCdEf"
}

variable "execution_role_arn" {
  description = "Task execution role allowed to read api_key_secret_arn."
  type        = string
  default     = "arn:aws:iam::123456789012:role/kelpie-agent-task-execution"
}

variable "docker_socket_gid" {
  description = "Group id of /var/run/docker.sock on the container instances; the agent runs as 10001:<this gid> to read it."
  type        = number
  default     = 993
}

variable "site" {
  description = "Datadog site."
  type        = string
  default     = "datadoghq.com"
}

variable "env" {
  description = "env tag of every host and metric."
  type        = string
  default     = "prod"
}

variable "region" {
  description = "AWS region (logs)."
  type        = string
  default     = "us-east-1"
}

variable "notify" {
  description = "Who the standard monitors notify."
  type        = string
  default     = "@slack-team-infra"
}

variable "page" {
  description = "Who is paged when a critical threshold is crossed."
  type        = string
  default     = "@pagerduty-infra"
}
