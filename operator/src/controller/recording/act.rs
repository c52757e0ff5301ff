//! Carries out one [`Action`] of the Recording state machine and reports what it found as
//! a fact for the next decision. Only IO lives here; no decision is taken.

use sanctum_api::control::StartRecording;

use super::decide::{Action, Facts, Reported, Started, Stored};
use super::node::{ControlClient, NodeError, endpoints};
use super::{Error, Result};
use crate::cloud::objects;
use crate::controller::Context;

/// Everything the actions need.
pub struct Actor<'a> {
    /// Operator context (API client, cloud clients).
    pub ctx: &'a Context,
    /// The control client of the tenant.
    pub client: &'a ControlClient,
    /// The tenant namespace.
    pub namespace: &'a str,
    /// The tenant's uid (its Services' owner).
    pub tenant_uid: &'a str,
    /// The recording's uid (its id on the node).
    pub id: &'a str,
}

impl Actor<'_> {
    /// Performs `action`, recording its outcome in `facts`.
    pub async fn act(&self, action: Action, facts: &mut Facts) -> Result<()> {
        match action {
            Action::Discover => {
                facts.nodes = Some(self.discover().await?);
            }
            Action::Start(request) => {
                facts.started = Some(self.start(&request, facts).await?);
            }
            Action::Poll(node) => {
                facts.reported = Some(reported(self.client.get(&node, self.id).await)?);
            }
            Action::Stop(node) => {
                facts.reported = Some(reported(self.client.stop(&node, self.id).await)?);
            }
            Action::Hash {
                bucket,
                key,
                version,
            } => {
                let hashed =
                    objects::sha256(&self.ctx.cloud.s3, &bucket, &key, version.as_deref()).await;
                facts.stored = Some(match hashed {
                    Ok((sha256, size)) => Stored::Object { sha256, size },
                    Err(e) if e.is_not_found() => Stored::Missing(e.to_string()),
                    Err(source) => return Err(Error::ReadObject { key, source }),
                });
            }
            Action::FindRestored {
                bucket,
                key,
                lost,
                sha256,
            } => {
                let found =
                    objects::restored_version(&self.ctx.cloud.s3, &bucket, &key, &lost, &sha256)
                        .await
                        .map_err(|source| Error::ReadObject {
                            key: key.clone(),
                            source,
                        })?;
                facts.restored = Some(found);
            }
            Action::AbortUploads { bucket, key } => {
                objects::abort_uploads(&self.ctx.cloud.s3, &bucket, &key)
                    .await
                    .map_err(|source| Error::AbortUploads { key, source })?;
                facts.aborted = true;
            }
            Action::DeleteVersions { bucket, key } => {
                let deleted = objects::delete_all_versions(&self.ctx.cloud.s3, &bucket, &key)
                    .await
                    .map_err(|source| Error::DeleteObject { key, source })?;
                tracing::info!(versions = deleted, "recording deleted");
                facts.deleted = Some(deleted as u64);
            }
        }
        Ok(())
    }

    async fn discover(&self) -> Result<Vec<super::node::NodeEndpoint>> {
        endpoints(&self.ctx.client, self.namespace, self.tenant_uid)
            .await
            .map_err(|source| Error::DiscoverNodes { source })
    }

    /// Asks each of the tenant's nodes in turn; the one hosting the room records it.
    async fn start(&self, request: &StartRecording, facts: &mut Facts) -> Result<Started> {
        let nodes = match &facts.nodes {
            Some(nodes) => nodes.clone(),
            None => {
                let nodes = self.discover().await?;
                facts.nodes = Some(nodes.clone());
                nodes
            }
        };
        let mut last_error = None;
        for node in nodes {
            match self.client.start(&node, self.id, request).await {
                Ok(report) => return Ok(Started::On { node, report }),
                Err(e) if e.is_not_found() => {}
                Err(e) => last_error = Some(e.to_string()),
            }
        }
        Ok(last_error.map_or(Started::NoHost, Started::Refused))
    }
}

/// A node's answer as a fact: lost when it is unreachable or forgot the recording.
fn reported(
    answer: std::result::Result<sanctum_api::control::RecordingReport, NodeError>,
) -> Result<Reported> {
    match answer {
        Ok(report) => Ok(Reported::Report(report)),
        Err(e @ (NodeError::Unreachable(..) | NodeError::Status { status: 404, .. })) => {
            Ok(Reported::Lost(e.to_string()))
        }
        Err(source) => Err(Error::AskNode { source }),
    }
}
