# The kelpie agent as an ECS daemon service: one task per container instance, DogStatsD on host port 8125/udp and
# the Unix socket /var/run/datadog/dsd.socket, host and container metrics from the instance, ECS deploy events.
# The same container definition as deploy/ecs/agent-daemon-task.json (which tests/deploy validates against the ECS
# API schema); keep the two alike. Its alerts are in monitors.tf, next to it: `kelpie monitors plan --dir .`.

resource "aws_cloudwatch_log_group" "kelpie_agent" {
  name              = "/ecs/kelpie-agent"
  retention_in_days = 14
}

resource "aws_ecs_task_definition" "kelpie_agent" {
  family                   = "kelpie-agent"
  network_mode             = "bridge"
  pid_mode                 = "host"
  requires_compatibilities = ["EC2"]
  execution_role_arn       = var.execution_role_arn

  container_definitions = jsonencode([
    {
      name                   = "kelpie-agent"
      image                  = var.image
      essential              = true
      cpu                    = 100
      memory                 = 384
      memoryReservation      = 128
      user                   = "10001:${var.docker_socket_gid}"
      readonlyRootFilesystem = true
      linuxParameters = {
        tmpfs = [{ containerPath = "/tmp", size = 64, mountOptions = ["noexec", "nosuid", "uid=10001", "gid=10001"] }]
      }
      command                = ["agent"]
      portMappings = [
        { containerPort = 8125, hostPort = 8125, protocol = "udp" },
        { containerPort = 8126, hostPort = 8126, protocol = "tcp" },
      ]
      environment = [
        { name = "DD_SITE", value = var.site },
        { name = "DD_ENV", value = var.env },
        { name = "DD_DOGSTATSD_NON_LOCAL_TRAFFIC", value = "true" },
        { name = "DD_APM_NON_LOCAL_TRAFFIC", value = "true" },
        { name = "DD_DOGSTATSD_SOCKET", value = "/var/run/datadog/dsd.socket" },
        { name = "DD_DOGSTATSD_ORIGIN_DETECTION", value = "true" },
        { name = "DD_DOGSTATSD_ORIGIN_DETECTION_CLIENT", value = "true" },
        { name = "HOST_PROC", value = "/host/proc" },
        { name = "HOST_SYS", value = "/host/sys" },
      ]
      secrets = [
        { name = "DD_API_KEY", valueFrom = var.api_key_secret_arn },
      ]
      mountPoints = [
        { sourceVolume = "docker_sock", containerPath = "/var/run/docker.sock", readOnly = true },
        { sourceVolume = "proc", containerPath = "/host/proc", readOnly = true },
        { sourceVolume = "cgroup", containerPath = "/host/sys/fs/cgroup", readOnly = true },
        { sourceVolume = "dsdsocket", containerPath = "/var/run/datadog", readOnly = false },
      ]
      healthCheck = {
        command     = ["CMD", "/usr/bin/kelpie", "status", "--health"]
        interval    = 30
        timeout     = 5
        retries     = 3
        startPeriod = 30
      }
      stopTimeout = 15 # the agent exits within 10 s of SIGTERM (docs/reliability.md)
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          "awslogs-group"         = aws_cloudwatch_log_group.kelpie_agent.name
          "awslogs-region"        = var.region
          "awslogs-stream-prefix" = "kelpie"
        }
      }
    }
  ])

  volume {
    name      = "docker_sock"
    host_path = "/var/run/docker.sock"
  }
  volume {
    name      = "proc"
    host_path = "/proc/"
  }
  volume {
    name      = "cgroup"
    host_path = "/sys/fs/cgroup/"
  }
  volume {
    name      = "dsdsocket"
    host_path = "/var/run/datadog/"
  }
}

resource "aws_ecs_service" "kelpie_agent" {
  name                = "kelpie-agent"
  cluster             = var.cluster_arn
  task_definition     = aws_ecs_task_definition.kelpie_agent.arn
  launch_type         = "EC2"
  scheduling_strategy = "DAEMON"

  # A daemon is replaced in place: stop the old task on an instance before starting the new one.
  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 100
  enable_ecs_managed_tags            = true
  propagate_tags                     = "TASK_DEFINITION"
}
