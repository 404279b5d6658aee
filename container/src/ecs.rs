//! Client of the ECS container agent's introspection API (`ecs_agent_url`, default `http://localhost:51678`):
//! `/v1/metadata` gives the cluster, `/v1/tasks` the tasks with their known status. Both are optional: when the
//! API does not answer, container labels alone drive deploy detection.

use crate::ContainerError;
use serde::Deserialize;
use std::time::Duration;

/// Largest introspection response we read (a host runs at most a few hundred tasks).
const MAX_BODY: usize = 8 << 20;

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct EcsMetadata {
    #[serde(rename = "Cluster", default)]
    pub cluster: String,
    #[serde(rename = "ContainerInstanceArn", default)]
    pub container_instance_arn: Option<String>,
    #[serde(rename = "Version", default)]
    pub version: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct EcsTaskContainer {
    #[serde(rename = "DockerId", default)]
    pub docker_id: String,
    #[serde(rename = "DockerName", default)]
    pub docker_name: String,
    #[serde(rename = "Name", default)]
    pub name: String,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct EcsTask {
    #[serde(rename = "Arn", default)]
    pub arn: String,
    #[serde(rename = "DesiredStatus", default)]
    pub desired_status: String,
    #[serde(rename = "KnownStatus", default)]
    pub known_status: String,
    #[serde(rename = "Family", default)]
    pub family: String,
    #[serde(rename = "Version", default)]
    pub version: String,
    #[serde(rename = "Containers", default)]
    pub containers: Vec<EcsTaskContainer>,
}

#[derive(Deserialize)]
struct TasksResponse {
    #[serde(rename = "Tasks", default)]
    tasks: Vec<EcsTask>,
}

/// A small client with short timeouts: the ECS agent runs on the same host.
#[derive(Clone, Debug)]
pub struct EcsClient {
    http: reqwest::Client,
    base: String,
}

impl EcsClient {
    pub fn new(base: &str) -> Result<Self, ContainerError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .connect_timeout(Duration::from_secs(1))
            .no_proxy()
            .build()
            .map_err(|e| ContainerError::Ecs(format!("cannot build an HTTP client: {e}")))?;
        Ok(EcsClient {
            http,
            base: base.trim_end_matches('/').to_string(),
        })
    }

    async fn get<T: for<'de> Deserialize<'de>>(&self, path: &str) -> Result<T, ContainerError> {
        let url = format!("{}{}", self.base, path);
        let mut resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| ContainerError::Ecs(format!("GET {url} failed: {e}")))?;
        if !resp.status().is_success() {
            return Err(ContainerError::Ecs(format!(
                "GET {url} answered {}",
                resp.status()
            )));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| ContainerError::Ecs(format!("reading {url} failed: {e}")))?
        {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(ContainerError::Ecs(format!(
                    "{url} answered more than {MAX_BODY} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body)
            .map_err(|e| ContainerError::Ecs(format!("{url} answered bad JSON: {e}")))
    }

    /// `GET /v1/metadata`.
    pub async fn metadata(&self) -> Result<EcsMetadata, ContainerError> {
        self.get("/v1/metadata").await
    }

    /// `GET /v1/tasks`.
    pub async fn tasks(&self) -> Result<Vec<EcsTask>, ContainerError> {
        Ok(self.get::<TasksResponse>("/v1/tasks").await?.tasks)
    }
}
