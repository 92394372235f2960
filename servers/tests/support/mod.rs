//! Test fixture: a server of any strategy on a real loopback port, with its own real
//! `redis-server` when the strategy needs one, plus a small protocol client.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use authbench_server::config::{ServerConfig, StrategyName};
use authbench_server::jwt::JwtKeys;
use authbench_server::pg_process::PgServer;
use authbench_server::pg_store::{PgTable, StoreKind};
use authbench_server::redis_process::{RedisCluster, RedisServer};
use authbench_server::store::RedisTarget;
use authbench_server::strategy::Capabilities;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub const PASSWORD: &str = "test-password";
pub const ADMIN_KEY: &str = "test-admin-key";

/// A server under test. Dropping it stops the server and kills its Redis.
pub struct TestServer {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub capabilities: Capabilities,
    pub jwt_keys: Option<Arc<JwtKeys>>,
    pub redis: Option<RedisServer>,
    /// The Redis Cluster the server uses instead, when started on one.
    pub cluster: Option<RedisCluster>,
    /// The PostgreSQL the server keeps its sessions in, when started on one.
    pub pg: Option<PgServer>,
    pub config: ServerConfig,
    /// Refresh token issued with each access token (strategies that issue them).
    pub refresh_tokens: std::sync::Mutex<std::collections::HashMap<String, String>>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl TestServer {
    /// The test defaults for `strategy`.
    fn config(strategy: StrategyName) -> ServerConfig {
        let mut config = ServerConfig::new(strategy);
        config.users = 50;
        config.user_password = PASSWORD.to_owned();
        config.admin_key = ADMIN_KEY.to_owned();
        config
    }

    /// Starts `strategy` with test defaults, adjusted by `tweak`.
    pub async fn start(strategy: StrategyName, tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        let redis = strategy.uses_store().then(|| RedisServer::start().expect("start redis-server"));
        let mut config = Self::config(strategy);
        if let Some(redis) = &redis {
            config.redis = RedisTarget::Single(redis.url());
        }
        tweak(&mut config);
        Self::start_with_redis(config, redis).await
    }

    /// Starts `strategy` against a three-master Redis Cluster of its own.
    pub async fn start_on_cluster(strategy: StrategyName, tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        let cluster = tokio::task::spawn_blocking(|| RedisCluster::start(3)).await.unwrap().expect("start cluster");
        let mut config = Self::config(strategy);
        config.redis = RedisTarget::Cluster(cluster.urls());
        tweak(&mut config);
        let mut server = Self::start_with_redis(config, None).await;
        server.cluster = Some(cluster);
        server
    }

    /// Starts `strategy` (session) with its sessions in a PostgreSQL of its own, in a table of
    /// persistence `table`.
    pub async fn start_on_postgres(
        strategy: StrategyName,
        table: PgTable,
        tweak: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        let pg = tokio::task::spawn_blocking(PgServer::start).await.unwrap().expect("start postgres");
        let mut config = Self::config(strategy);
        config.store = StoreKind::Postgres;
        config.postgres_url = pg.url();
        config.postgres_table = table;
        config.postgres_pool_size = 4;
        tweak(&mut config);
        let mut server = Self::start_with_redis(config, None).await;
        server.pg = Some(pg);
        server
    }

    /// Starts a server against an existing Redis (or none).
    pub async fn start_with_redis(config: ServerConfig, redis: Option<RedisServer>) -> Self {
        let server = authbench_server::Server::build(config.clone()).await.expect("build server");
        let capabilities = server.capabilities().clone();
        let jwt_keys = server.jwt_keys();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(server.serve(listener, async {
            let _ = rx.await;
        }));
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
        Self {
            addr,
            client,
            capabilities,
            jwt_keys,
            redis,
            cluster: None,
            pg: None,
            config,
            refresh_tokens: std::sync::Mutex::default(),
            shutdown: Some(tx),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Logs `username` in and returns the access token.
    pub async fn login(&self, username: &str) -> String {
        let (status, body) = self.post_json("/login", json!({"username": username, "password": PASSWORD})).await;
        assert_eq!(status, StatusCode::OK, "login {username}: {body}");
        let access = body["access_token"].as_str().expect("access_token").to_owned();
        if let Some(refresh) = body["refresh_token"].as_str() {
            self.refresh_tokens.lock().unwrap().insert(access.clone(), refresh.to_owned());
        }
        access
    }

    /// The refresh token issued with `access` by [`TestServer::login`].
    pub fn refresh_token_of(&self, access: &str) -> Option<String> {
        self.refresh_tokens.lock().unwrap().get(access).cloned()
    }

    /// `POST /refresh`.
    pub async fn refresh(&self, refresh_token: &str) -> (StatusCode, Value) {
        self.post_json("/refresh", json!({ "refresh_token": refresh_token })).await
    }

    pub async fn post_json(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self.client.post(self.url(path)).json(&body).send().await.expect("send");
        split(response).await
    }

    /// `GET /me` with a bearer token.
    pub async fn me(&self, token: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(self.url("/me"))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .expect("send");
        split(response).await
    }

    /// `GET /me` with a raw Authorization header value (bytes, possibly invalid).
    pub async fn me_raw(&self, authorization: &[u8]) -> reqwest::Response {
        self.client.get(self.url("/me")).header("authorization", authorization).send().await.expect("send")
    }

    /// POST with a bearer token and an optional JSON body.
    pub async fn post_auth(&self, path: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.client.post(self.url(path)).header("authorization", format!("Bearer {token}"));
        if let Some(body) = body {
            request = request.json(&body);
        }
        split(request.send().await.expect("send")).await
    }

    /// POST an admin endpoint with the right key.
    pub async fn admin_post(&self, path: &str) -> (StatusCode, Value) {
        let response = self.client.post(self.url(path)).header("x-admin-key", ADMIN_KEY).send().await.expect("send");
        split(response).await
    }

    pub async fn admin_put_roles(&self, username: &str, roles: &[&str]) -> (StatusCode, Value) {
        let response = self
            .client
            .put(self.url(&format!("/admin/users/{username}/roles")))
            .header("x-admin-key", ADMIN_KEY)
            .json(&json!({ "roles": roles }))
            .send()
            .await
            .expect("send");
        split(response).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        split(self.client.get(self.url(path)).send().await.expect("send")).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Status and JSON body (Null when empty); asserts that any body is JSON.
pub async fn split(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body");
    if text.is_empty() {
        return (status, Value::Null);
    }
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: body is not JSON ({e}): {text:?}"));
    (status, body)
}
