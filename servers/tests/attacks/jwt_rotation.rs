//! Revoke-all on the stateless design rotates the signing key. An attacker holding a token
//! issued before it waits for the server to restart, or for a new instance to start from the
//! same key file, and tries again.

use authbench_server::config::StrategyName;
use authbench_server::jwt::JwtAlg;
use reqwest::StatusCode;

use crate::support::TestServer;

fn key_file(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("authbench-attack-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("jwt.key")
}

#[tokio::test]
async fn a_token_ended_by_revoke_all_does_not_work_again_after_a_restart() {
    for alg in [JwtAlg::HS256, JwtAlg::ES256] {
        let file = key_file(&format!("restart-{alg:?}"));
        let with_file = |c: &mut authbench_server::ServerConfig| {
            c.jwt_alg = alg;
            c.jwt_key_file = Some(file.clone());
        };
        let server = TestServer::start(StrategyName::Jwt, with_file).await;
        let stolen = server.login("user1").await;
        assert_eq!(server.me(&stolen).await.0, StatusCode::OK);
        assert_eq!(server.admin_post("/admin/revoke-all").await.0, StatusCode::NO_CONTENT);
        assert_eq!(server.me(&stolen).await.0, StatusCode::UNAUTHORIZED);
        drop(server);

        let restarted = TestServer::start(StrategyName::Jwt, with_file).await;
        let (status, body) = restarted.me(&stolen).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{alg:?}: the token revoked before the restart works again: {body}"
        );
        // The rotated key is the one in the file: tokens issued after the restart work.
        let fresh = restarted.login("user2").await;
        assert_eq!(restarted.me(&fresh).await.0, StatusCode::OK, "{alg:?}");
        drop(restarted);

        if alg != JwtAlg::HS256 {
            // A verify-only instance started later from the public key next to the file.
            let mut public = file.as_os_str().to_owned();
            public.push(".pub");
            let verifier = TestServer::start(StrategyName::Jwt, |c| {
                c.jwt_alg = alg;
                c.jwt_public_key_file = Some(public.clone().into());
            })
            .await;
            let (status, body) = verifier.me(&stolen).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{alg:?}: a verify-only instance accepts it: {body}");
            assert_eq!(verifier.me(&fresh).await.0, StatusCode::OK, "{alg:?}");
        }
    }
}
