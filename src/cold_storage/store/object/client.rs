//! Building an `object_store` client from the config: `s3://bucket/prefix` through
//! `AmazonS3Builder`, `memory://name[/prefix]` through a process-wide registry of `InMemory`
//! stores (one name, one store: a reopen in the same process sees the same objects).
//!
//! Secrets: the secret key goes only into the builder. It is never formatted into an error, a
//! log line or a `Debug` (the config's [`Secret`] prints `***`, and [`StoreSpec`]'s `Debug`
//! skips it).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::memory::InMemory;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};
use parking_lot::Mutex;

use crate::config::{ColdConfig, ReplicaConfig, Secret};
use crate::error::{Error, Result};

/// Default region when neither the config nor `AWS_REGION` names one.
const DEFAULT_REGION: &str = "us-east-1";

/// The process-wide `memory://` stores, by name.
static MEMORY: LazyLock<Mutex<HashMap<String, Arc<InMemory>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The in-process store `memory://<name>` (created on first use): for tests, which can put,
/// list and delete objects in it directly.
pub fn memory_store(name: &str) -> Arc<dyn ObjectStore> {
    memory(name)
}

fn memory(name: &str) -> Arc<InMemory> {
    Arc::clone(
        MEMORY
            .lock()
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(InMemory::new())),
    )
}

/// Forget the in-process store `memory://<name>` (its objects go once no open store holds
/// it): for tests.
pub fn drop_memory_store(name: &str) {
    MEMORY.lock().remove(name);
}

/// What one object store is: its URL and S3 settings (the primary's, or a replica's), and
/// the request bounds shared by all stores.
#[derive(Clone)]
pub(crate) struct StoreSpec {
    /// `s3://bucket/prefix` or `memory://name/prefix`.
    pub url: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub allow_http: bool,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub max_retries: usize,
    pub timeout: Duration,
}

impl std::fmt::Debug for StoreSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSpec")
            .field("url", &self.url)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("allow_http", &self.allow_http)
            .field("has_access_key_id", &self.access_key_id.is_some())
            .field("has_secret_access_key", &self.secret_access_key.is_some())
            .finish()
    }
}

impl StoreSpec {
    /// The primary store of `cfg` (`cold.store`).
    pub(crate) fn primary(cfg: &ColdConfig) -> Self {
        Self {
            url: cfg.store.clone(),
            endpoint: cfg.s3_endpoint.clone(),
            region: cfg.s3_region.clone(),
            allow_http: cfg.s3_allow_http,
            access_key_id: cfg.s3_access_key_id.clone(),
            secret_access_key: cfg.s3_secret_access_key.clone(),
            max_retries: cfg.s3_max_retries,
            timeout: Duration::from_secs(cfg.s3_timeout_secs),
        }
    }

    /// A replica of `cfg`, with its own endpoint, region and credentials.
    pub(crate) fn replica(cfg: &ColdConfig, r: &ReplicaConfig) -> Self {
        Self {
            url: r.store.clone(),
            endpoint: r.s3_endpoint.clone(),
            region: r.s3_region.clone(),
            allow_http: r.s3_allow_http,
            access_key_id: r.s3_access_key_id.clone(),
            secret_access_key: r.s3_secret_access_key.clone(),
            max_retries: cfg.s3_max_retries,
            timeout: Duration::from_secs(cfg.s3_timeout_secs),
        }
    }
}

/// A built client: the store, the key prefix inside it (no leading or trailing `/`), and the
/// URL for messages (`s3://bucket/prefix`).
#[derive(Debug, Clone)]
pub(crate) struct Built {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: String,
    pub url: String,
}

/// Split `scheme://bucket/prefix` into the bucket and the prefix.
fn split(url: &str, scheme: &str) -> (String, String) {
    let rest = url.strip_prefix(scheme).unwrap_or(url);
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    (bucket.to_owned(), prefix.trim_matches('/').to_owned())
}

fn config_error(spec: &StoreSpec, e: impl std::fmt::Display) -> Error {
    Error::config(
        "cold.store",
        format!("cannot build the object-store client for {}: {e}", spec.url),
    )
}

/// Build the client of `spec`.
pub(crate) fn build(spec: &StoreSpec) -> Result<Built> {
    if spec.url.starts_with("memory://") {
        let (name, prefix) = split(&spec.url, "memory://");
        // Behind the switch tests use to take a store down (`failing.rs`).
        let store: Arc<dyn ObjectStore> = memory(&name);
        return Ok(Built {
            store: super::failing::Switchable::wrap(&name, store),
            prefix,
            url: spec.url.trim_end_matches('/').to_owned(),
        });
    }
    if !spec.url.starts_with("s3://") {
        return Err(config_error(
            spec,
            "expected s3://bucket/prefix or memory://name",
        ));
    }
    let (bucket, prefix) = split(&spec.url, "s3://");
    // reqwest is built with rustls but no crypto provider: install ring's, once per process
    // (an error only says one is installed already).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let region = spec
        .region
        .clone()
        .or_else(|| env("AWS_REGION"))
        .unwrap_or_else(|| DEFAULT_REGION.to_owned());
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&bucket)
        .with_region(region)
        .with_allow_http(spec.allow_http)
        .with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(5),
                base: 2.0,
            },
            max_retries: spec.max_retries,
            retry_timeout: spec.timeout,
        })
        .with_client_options(
            ClientOptions::new()
                .with_allow_http(spec.allow_http)
                .with_timeout(spec.timeout)
                .with_connect_timeout(spec.timeout.min(Duration::from_secs(10))),
        );
    let endpoint = spec.endpoint.clone().or_else(|| env("AWS_ENDPOINT"));
    if let Some(endpoint) = endpoint {
        // An S3-compatible server: path-style requests (`<endpoint>/<bucket>/<key>`).
        builder = builder
            .with_endpoint(endpoint)
            .with_virtual_hosted_style_request(false);
    }
    if let Some(id) = spec
        .access_key_id
        .clone()
        .or_else(|| env("AWS_ACCESS_KEY_ID"))
    {
        builder = builder.with_access_key_id(id);
    }
    let secret = spec
        .secret_access_key
        .as_ref()
        .map(|s| s.expose().to_owned())
        .or_else(|| env("AWS_SECRET_ACCESS_KEY"));
    if let Some(secret) = secret {
        builder = builder.with_secret_access_key(secret);
    }
    if let Some(token) = env("AWS_SESSION_TOKEN") {
        builder = builder.with_token(token);
    }
    // The builder's errors name settings, never their secret values.
    let s3 = builder.build().map_err(|e| config_error(spec, e))?;
    let url = format!("s3://{bucket}{}", if_prefix(&prefix));
    Ok(Built {
        store: Arc::new(s3),
        prefix,
        url,
    })
}

fn if_prefix(prefix: &str) -> String {
    if prefix.is_empty() {
        String::new()
    } else {
        format!("/{prefix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cold_storage_client_urls_memory_registry_and_no_secret_in_debug() {
        assert_eq!(
            split("s3://b/a/b/", "s3://"),
            ("b".to_owned(), "a/b".to_owned())
        );
        assert_eq!(split("s3://b", "s3://"), ("b".to_owned(), String::new()));
        let mut cfg = ColdConfig {
            store: "memory://client-test/p".into(),
            ..ColdConfig::default()
        };
        let a = build(&StoreSpec::primary(&cfg)).unwrap();
        let b = build(&StoreSpec::primary(&cfg)).unwrap();
        assert_eq!(a.prefix, "p");
        assert!(Arc::ptr_eq(&memory("client-test"), &memory("client-test")));
        drop((a, b));
        drop_memory_store("client-test");

        cfg.store = "s3://bucket/prefix".into();
        cfg.s3_endpoint = Some("http://127.0.0.1:1".into());
        cfg.s3_allow_http = true;
        cfg.s3_access_key_id = Some("AKIDEXAMPLE".into());
        cfg.s3_secret_access_key = Some(Secret::new("very-secret-value"));
        let spec = StoreSpec::primary(&cfg);
        let built = build(&spec).unwrap();
        assert_eq!(built.url, "s3://bucket/prefix");
        for text in [
            format!("{spec:?}"),
            format!("{cfg:?}"),
            format!("{:?}", built.store),
            built.store.to_string(),
        ] {
            assert!(!text.contains("very-secret-value"), "{text}");
        }
    }
}
