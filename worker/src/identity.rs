//! Which instance type and zone this worker runs on, from the metadata
//! service the notice watchers already talk to, so a worker reports its
//! pool's facts without being told:
//! - AWS IMDSv2: `instance-type` and `placement/availability-zone`;
//! - GCP: `instance/machine-type` and `instance/zone` (the last path
//!   segment of each);
//! - Azure IMDS: `compute.vmSize` and `compute.zone` (the region,
//!   `compute.location`, when the VM has no zone).

use std::time::Duration;

use tracing::{info, warn};

use crate::notice::{detect, Cloud, CloudChoice, Imds, NoticeSettings};

/// (instance type, zone) as the cloud reports them; `None` off a cloud.
pub async fn discover(s: &NoticeSettings) -> Option<(String, String)> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?;
    let cloud = match s.cloud {
        CloudChoice::None => return None,
        CloudChoice::Named(c) => c,
        CloudChoice::Auto => detect(&http, s).await?,
    };
    let found = match cloud {
        Cloud::Aws => aws(&http, s).await,
        Cloud::Gcp => gcp(&http, s).await,
        Cloud::Azure => azure(&http, s).await,
    };
    match &found {
        Some((t, z)) => {
            info!(?cloud, instance_type = %t, zone = %z, "instance identity from metadata")
        }
        None => warn!(
            ?cloud,
            "metadata service did not say the instance type and zone"
        ),
    }
    found
}

async fn aws(http: &reqwest::Client, s: &NoticeSettings) -> Option<(String, String)> {
    let mut imds = Imds::new(http, &s.aws_url, s.aws_token_ttl);
    let t = imds.get("instance-type").await.ok()??;
    let z = imds.get("placement/availability-zone").await.ok()??;
    Some((t.trim().to_string(), z.trim().to_string()))
}

/// `projects/123/machineTypes/n2-standard-8` → `n2-standard-8`.
fn last_segment(s: &str) -> String {
    s.trim().rsplit('/').next().unwrap_or_default().to_string()
}

/// The body of a successful response to `req`.
async fn body(req: reqwest::RequestBuilder) -> Option<String> {
    req.send()
        .await
        .ok()?
        .error_for_status()
        .ok()?
        .text()
        .await
        .ok()
}

async fn gcp(http: &reqwest::Client, s: &NoticeSettings) -> Option<(String, String)> {
    let get = |path: &str| {
        body(
            http.get(format!("{}/computeMetadata/v1/instance/{path}", s.gcp_url))
                .header("Metadata-Flavor", "Google"),
        )
    };
    let t = get("machine-type").await?;
    let z = get("zone").await?;
    Some((last_segment(&t), last_segment(&z)))
}

async fn azure(http: &reqwest::Client, s: &NoticeSettings) -> Option<(String, String)> {
    let text = body(
        http.get(format!(
            "{}/metadata/instance?api-version=2021-02-01",
            s.azure_url
        ))
        .header("Metadata", "true"),
    )
    .await?;
    let doc: serde_json::Value = serde_json::from_str(&text).ok()?;
    let c = &doc["compute"];
    let t = c["vmSize"].as_str()?.to_string();
    let z = match c["zone"].as_str() {
        Some(z) if !z.is_empty() => z.to_string(),
        _ => c["location"].as_str().unwrap_or_default().to_string(),
    };
    Some((t, z))
}

#[cfg(test)]
mod tests {
    #[test]
    fn gcp_paths_keep_their_last_segment() {
        assert_eq!(
            super::last_segment("projects/1234/machineTypes/n2-standard-8\n"),
            "n2-standard-8"
        );
        assert_eq!(
            super::last_segment("projects/1234/zones/us-central1-a"),
            "us-central1-a"
        );
    }
}
