service = "standalone"
