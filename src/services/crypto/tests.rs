use super::jwt::*;
use super::platform_key::*;
use super::tool_keys::*;
use super::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, LineEnding};
use rsa::RsaPrivateKey;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TOOL: &str = "tool-client-id";
const PLATFORM: &str = "https://gradebook.example/lti";

// Key generation is the slow part; share two keys across tests.
fn tool_key() -> &'static PlatformKey {
    static KEY: OnceLock<PlatformKey> = OnceLock::new();
    KEY.get_or_init(|| PlatformKey::generate().expect("generate"))
}

fn other_key() -> &'static PlatformKey {
    static KEY: OnceLock<PlatformKey> = OnceLock::new();
    KEY.get_or_init(|| PlatformKey::generate().expect("generate"))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims() -> Value {
    json!({
        "iss": TOOL,
        "sub": TOOL,
        "aud": PLATFORM,
        "iat": now(),
        "exp": now() + 300,
        "jti": "abc",
    })
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

fn without(mut claims: Value, name: &str) -> Value {
    claims.as_object_mut().unwrap().remove(name);
    claims
}

fn expect() -> Expect<'static> {
    Expect {
        subject: Some(TOOL),
        ..Expect::new(TOOL, PLATFORM)
    }
}

fn inline_source() -> ToolKeySource {
    ToolKeySource::Jwk(tool_key().public_jwk.clone())
}

async fn verify(token: &str) -> Result<Map<String, Value>, JwtError> {
    verify_tool_jwt(token, &inline_source(), &JwksCache::default(), &expect()).await
}

async fn verify_claims(claims: &Value) -> Result<Map<String, Value>, JwtError> {
    verify(&tool_key().sign(claims).unwrap()).await
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

// --- platform keys ---------------------------------------------------

#[tokio::test]
async fn generate_sign_verify_with_public_jwk() {
    let key = tool_key();
    let token = key.sign(&claims()).unwrap();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    assert_eq!(header.kid.as_deref(), Some(key.kid.as_str()));
    assert_eq!(header.typ.as_deref(), Some("JWT"));

    let got = verify(&token).await.unwrap();
    assert_eq!(got["jti"], "abc");
    assert_eq!(key.public_jwk["kty"], "RSA");
    assert_eq!(key.public_jwk["alg"], "RS256");
    assert_eq!(key.public_jwk["use"], "sig");
    assert_eq!(key.public_jwk["kid"], key.kid.as_str());
}

#[test]
fn from_private_pem_round_trip_keeps_kid() {
    let key = tool_key();
    let again = PlatformKey::from_private_pem(&key.private_pkcs8_pem).unwrap();
    assert_eq!(again.kid, key.kid);
    assert_eq!(again.public_jwk, key.public_jwk);
    assert!(key
        .private_pkcs8_pem
        .starts_with("-----BEGIN PRIVATE KEY-----"));

    // PKCS#1 input is accepted and normalised to PKCS#8.
    let rsa = RsaPrivateKey::from_pkcs8_pem(&key.private_pkcs8_pem).unwrap();
    let pkcs1 = rsa.to_pkcs1_pem(LineEnding::LF).unwrap();
    let from_pkcs1 = PlatformKey::from_private_pem(&pkcs1).unwrap();
    assert_eq!(from_pkcs1.kid, key.kid);
    assert_eq!(from_pkcs1.private_pkcs8_pem, key.private_pkcs8_pem);

    assert!(matches!(
        PlatformKey::from_private_pem("not a key"),
        Err(CryptoError::InvalidKey(_))
    ));
}

#[test]
fn kid_is_rfc7638_thumbprint() {
    // Example from RFC 7638, section 3.1.
    let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
    assert_eq!(
        rsa_thumbprint(n, "AQAB"),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
}

#[test]
fn debug_output_hides_private_key() {
    let shown = format!("{:?}", tool_key());
    assert!(!shown.contains("PRIVATE KEY"));
    assert!(shown.contains(&tool_key().kid));
}

#[test]
fn sign_refuses_non_object_claims() {
    assert!(matches!(
        tool_key().sign(&json!("nope")),
        Err(CryptoError::Signing(_))
    ));
}

#[test]
fn jwks_never_contains_private_parts() {
    let mut leaky = tool_key().public_jwk.clone();
    for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
        leaky[private] = json!("secret");
    }
    let oct = json!({"kty": "oct", "k": "c2VjcmV0"});
    let set = jwks(&[leaky, other_key().public_jwk.clone(), oct]);

    let keys = set["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], tool_key().public_jwk);
    for key in keys {
        for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            assert!(key.get(private).is_none(), "{private} leaked");
        }
    }
    assert!(!set.to_string().contains("secret"));
}

#[test]
fn parse_rsa_jwk_rejects_non_rsa_and_weak_keys() {
    assert!(parse_rsa_jwk(&tool_key().public_jwk).is_ok());
    let ec = json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"});
    assert_eq!(
        parse_rsa_jwk(&ec).unwrap_err(),
        CryptoError::InvalidKey("only RSA keys are supported")
    );
    let oct = json!({"kty": "oct", "k": "c2VjcmV0"});
    assert!(parse_rsa_jwk(&oct).is_err());
    let weak = json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([0xffu8; 128]), "e": "AQAB"});
    assert!(parse_rsa_jwk(&weak).is_err());
    let no_n = json!({"kty": "RSA", "e": "AQAB"});
    assert!(parse_rsa_jwk(&no_n).is_err());
    assert!(parse_rsa_jwk(&json!([])).is_err());
}

// --- rejections ------------------------------------------------------

#[tokio::test]
async fn rejects_signature_from_other_key() {
    let token = other_key().sign(&claims()).unwrap();
    assert_eq!(verify(&token).await.unwrap_err(), JwtError::BadSignature);
}

#[tokio::test]
async fn rejects_tampered_payload() {
    let token = tool_key().sign(&claims()).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let forged = b64(&with(claims(), "sub", json!("someone-else")));
    let token = format!("{}.{}.{}", parts[0], forged, parts[2]);
    assert_eq!(verify(&token).await.unwrap_err(), JwtError::BadSignature);
}

#[tokio::test]
async fn rejects_alg_none() {
    let header = b64(&json!({"alg": "none", "typ": "JWT"}));
    let token = format!("{header}.{}.", b64(&claims()));
    assert_eq!(
        verify(&token).await.unwrap_err(),
        JwtError::UnsupportedAlg("none".to_owned())
    );
}

#[tokio::test]
async fn rejects_hs256_with_public_key_as_secret() {
    use rsa::pkcs8::EncodePublicKey;
    let rsa = RsaPrivateKey::from_pkcs8_pem(&tool_key().private_pkcs8_pem).unwrap();
    let public_pem = rsa
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let n = tool_key().public_jwk["n"].as_str().unwrap().to_owned();
    let jwk_text = tool_key().public_jwk.to_string();

    for secret in [public_pem.as_bytes(), n.as_bytes(), jwk_text.as_bytes()] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(tool_key().kid.clone());
        let token =
            jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(secret)).unwrap();
        assert_eq!(
            verify(&token).await.unwrap_err(),
            JwtError::UnsupportedAlg("HS256".to_owned())
        );
    }
}

#[tokio::test]
async fn rejects_other_rsa_algorithms() {
    let rsa = RsaPrivateKey::from_pkcs8_pem(&tool_key().private_pkcs8_pem).unwrap();
    let der = rsa.to_pkcs1_der().unwrap();
    for alg in [Algorithm::RS512, Algorithm::PS256] {
        let token = jsonwebtoken::encode(
            &Header::new(alg),
            &claims(),
            &EncodingKey::from_rsa_der(der.as_bytes()),
        )
        .unwrap();
        assert!(matches!(
            verify(&token).await.unwrap_err(),
            JwtError::UnsupportedAlg(_)
        ));
    }
}

#[tokio::test]
async fn rejects_malformed_tokens() {
    assert_eq!(verify("").await.unwrap_err(), JwtError::Malformed);
    assert_eq!(verify("a.b").await.unwrap_err(), JwtError::Malformed);
    assert_eq!(verify("a.b.c.d").await.unwrap_err(), JwtError::Malformed);
    assert_eq!(verify("%%%.b.c").await.unwrap_err(), JwtError::BadHeader);
    let header = b64(&json!({"alg": "RS256", "crit": ["exp"]}));
    assert_eq!(
        verify(&format!("{header}.e30.sig")).await.unwrap_err(),
        JwtError::BadHeader
    );
    let huge = "a".repeat(MAX_TOKEN_BYTES + 1);
    assert_eq!(verify(&huge).await.unwrap_err(), JwtError::Malformed);
    let token = tool_key()
        .sign(&with(claims(), "exp", json!("soon")))
        .unwrap();
    assert_eq!(verify(&token).await.unwrap_err(), JwtError::Malformed);
}

#[tokio::test]
async fn rejects_expired() {
    let c = with(claims(), "exp", json!(now() - 120));
    assert_eq!(verify_claims(&c).await.unwrap_err(), JwtError::Expired);
    // Within the leeway it still passes.
    let c = with(claims(), "exp", json!(now() - 30));
    assert!(verify_claims(&c).await.is_ok());
}

#[tokio::test]
async fn rejects_iat_in_future() {
    let c = with(claims(), "iat", json!(now() + 600));
    assert_eq!(
        verify_claims(&c).await.unwrap_err(),
        JwtError::IssuedInFuture
    );
}

#[tokio::test]
async fn rejects_nbf_in_future() {
    let c = with(claims(), "nbf", json!(now() + 600));
    assert_eq!(verify_claims(&c).await.unwrap_err(), JwtError::NotYetValid);
    let c = with(claims(), "nbf", json!(now() - 10));
    assert!(verify_claims(&c).await.is_ok());
}

#[tokio::test]
async fn rejects_wrong_iss() {
    let c = with(claims(), "iss", json!("someone-else"));
    assert_eq!(verify_claims(&c).await.unwrap_err(), JwtError::BadIssuer);
    let c = without(claims(), "iss");
    assert_eq!(
        verify_claims(&c).await.unwrap_err(),
        JwtError::MissingClaim("iss")
    );
}

#[tokio::test]
async fn rejects_wrong_aud() {
    let c = with(claims(), "aud", json!("https://other.example"));
    assert_eq!(verify_claims(&c).await.unwrap_err(), JwtError::BadAudience);
    let c = with(claims(), "aud", json!(["https://other.example"]));
    assert_eq!(verify_claims(&c).await.unwrap_err(), JwtError::BadAudience);
    let c = without(claims(), "aud");
    assert_eq!(
        verify_claims(&c).await.unwrap_err(),
        JwtError::MissingClaim("aud")
    );
}

#[tokio::test]
async fn accepts_aud_as_array() {
    let c = with(claims(), "aud", json!(["https://other.example", PLATFORM]));
    assert!(verify_claims(&c).await.is_ok());
}

#[tokio::test]
async fn accepts_aud_as_string() {
    let c = with(claims(), "aud", json!(PLATFORM));
    assert!(verify_claims(&c).await.is_ok());
}

#[tokio::test]
async fn rejects_wrong_sub() {
    let c = with(claims(), "sub", json!("someone-else"));
    assert_eq!(verify_claims(&c).await.unwrap_err(), JwtError::BadSubject);
    let c = without(claims(), "sub");
    assert_eq!(
        verify_claims(&c).await.unwrap_err(),
        JwtError::MissingClaim("sub")
    );
    // No subject expectation: any sub passes.
    let token = tool_key().sign(&with(claims(), "sub", json!("x"))).unwrap();
    let lax = Expect::new(TOOL, PLATFORM);
    let cache = JwksCache::default();
    assert!(verify_tool_jwt(&token, &inline_source(), &cache, &lax)
        .await
        .is_ok());
}

#[tokio::test]
async fn rejects_missing_exp() {
    let c = without(claims(), "exp");
    assert_eq!(
        verify_claims(&c).await.unwrap_err(),
        JwtError::MissingClaim("exp")
    );
}

#[tokio::test]
async fn enforces_max_lifetime() {
    let cache = JwksCache::default();
    let capped = Expect {
        max_lifetime_secs: Some(600),
        ..expect()
    };
    let long = with(claims(), "exp", json!(now() + 3600));
    let token = tool_key().sign(&long).unwrap();
    assert_eq!(
        verify_tool_jwt(&token, &inline_source(), &cache, &capped)
            .await
            .unwrap_err(),
        JwtError::LifetimeTooLong
    );
    let token = tool_key().sign(&without(claims(), "iat")).unwrap();
    assert_eq!(
        verify_tool_jwt(&token, &inline_source(), &cache, &capped)
            .await
            .unwrap_err(),
        JwtError::MissingClaim("iat")
    );
    let token = tool_key().sign(&claims()).unwrap();
    assert!(verify_tool_jwt(&token, &inline_source(), &cache, &capped)
        .await
        .is_ok());
}

#[test]
fn error_messages_hold_no_key_material() {
    let n = tool_key().public_jwk["n"].as_str().unwrap();
    let errors = [
        JwtError::BadHeader,
        JwtError::UnsupportedAlg("HS256".into()),
        JwtError::UnknownKey,
        JwtError::KeyFetch(CryptoError::Timeout.to_string()),
        JwtError::BadSignature,
        JwtError::Expired,
        JwtError::NotYetValid,
        JwtError::IssuedInFuture,
        JwtError::LifetimeTooLong,
        JwtError::BadIssuer,
        JwtError::BadAudience,
        JwtError::BadSubject,
        JwtError::MissingClaim("exp"),
        JwtError::Malformed,
    ];
    for err in errors {
        let text = err.to_string();
        assert!(text.len() < 80 && !text.contains(n), "{text}");
    }
}

// --- JWKS cache against a loopback server ----------------------------

#[derive(Clone)]
enum Reply {
    /// 200 with this JSON body (the body can be swapped mid-test).
    Json(Arc<Mutex<String>>),
    /// Read the request, then say nothing.
    Hang,
    /// Send these bytes, then keep the connection open without closing.
    PartialThenHang(Vec<u8>),
    /// Send these raw bytes and close.
    Raw(Vec<u8>),
}

struct TestServer {
    url: String,
    hits: Arc<AtomicUsize>,
}

impl TestServer {
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn serve(reply: Reply) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    // Runs until the test's runtime is dropped.
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let reply = reply.clone();
            let counter = Arc::clone(&counter);
            tokio::spawn(answer(stream, reply, counter));
        }
    });
    TestServer { url, hits }
}

async fn answer(mut stream: TcpStream, reply: Reply, hits: Arc<AtomicUsize>) {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    hits.fetch_add(1, Ordering::SeqCst);
    let bytes = match reply {
        Reply::Json(body) => {
            let body = body.lock().unwrap().clone();
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        }
        Reply::Raw(bytes) => bytes,
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            return;
        }
        Reply::PartialThenHang(bytes) => {
            let _ = stream.write_all(&bytes).await;
            tokio::time::sleep(Duration::from_secs(30)).await;
            return;
        }
    };
    let _ = stream.write_all(&bytes).await;
    let _ = stream.shutdown().await;
}

fn set_of(keys: &[&PlatformKey]) -> String {
    let jwks: Vec<Value> = keys.iter().map(|k| k.public_jwk.clone()).collect();
    jwks_json(&jwks)
}

fn jwks_json(keys: &[Value]) -> String {
    jwks(keys).to_string()
}

#[tokio::test]
async fn cache_fetches_by_kid_and_caches() {
    let body = Arc::new(Mutex::new(set_of(&[tool_key(), other_key()])));
    let server = serve(Reply::Json(body)).await;
    let cache = JwksCache::default();
    let source = ToolKeySource::JwksUrl(server.url.clone());

    let token = tool_key().sign(&claims()).unwrap();
    assert!(verify_tool_jwt(&token, &source, &cache, &expect())
        .await
        .is_ok());
    assert_eq!(server.hits(), 1);

    // Same kid, other kid of the same set, and a clone of the cache:
    // all served from memory.
    assert!(verify_tool_jwt(&token, &source, &cache, &expect())
        .await
        .is_ok());
    let other = other_key().sign(&claims()).unwrap();
    let clone = cache.clone();
    assert!(verify_tool_jwt(&other, &source, &clone, &expect())
        .await
        .is_ok());
    assert!(cache
        .key_for(&server.url, Some(&tool_key().kid))
        .await
        .is_ok());
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn cache_uses_single_key_when_header_has_no_kid() {
    let body = Arc::new(Mutex::new(set_of(&[tool_key()])));
    let server = serve(Reply::Json(body)).await;
    let cache = JwksCache::default();
    let source = ToolKeySource::JwksUrl(server.url.clone());

    let rsa = RsaPrivateKey::from_pkcs8_pem(&tool_key().private_pkcs8_pem).unwrap();
    let der = rsa.to_pkcs1_der().unwrap();
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &claims(),
        &EncodingKey::from_rsa_der(der.as_bytes()),
    )
    .unwrap();
    assert!(verify_tool_jwt(&token, &source, &cache, &expect())
        .await
        .is_ok());

    // With two keys and no kid the choice would be a guess: refused.
    let two = serve(Reply::Json(Arc::new(Mutex::new(set_of(&[
        tool_key(),
        other_key(),
    ])))))
    .await;
    let source = ToolKeySource::JwksUrl(two.url.clone());
    assert_eq!(
        verify_tool_jwt(&token, &source, &cache, &expect())
            .await
            .unwrap_err(),
        JwtError::UnknownKey
    );
}

#[tokio::test]
async fn cache_unknown_kid_triggers_one_refresh() {
    let body = Arc::new(Mutex::new(set_of(&[tool_key()])));
    let server = serve(Reply::Json(Arc::clone(&body))).await;
    let interval = Duration::from_millis(200);
    let cache = JwksCache::default().with_min_refresh_interval(interval);
    let url = server.url.as_str();

    cache.key_for(url, Some(&tool_key().kid)).await.unwrap();
    assert_eq!(server.hits(), 1);

    // The tool rotates in a new key; a token with its kid refetches once.
    *body.lock().unwrap() = set_of(&[tool_key(), other_key()]);
    tokio::time::sleep(interval + Duration::from_millis(50)).await;
    cache.key_for(url, Some(&other_key().kid)).await.unwrap();
    assert_eq!(server.hits(), 2);

    // A made-up kid right after that does not reach the server again.
    assert_eq!(
        cache.key_for(url, Some("made-up")).await.unwrap_err(),
        CryptoError::UnknownKey
    );
    assert_eq!(
        cache.key_for(url, Some("made-up")).await.unwrap_err(),
        CryptoError::UnknownKey
    );
    assert_eq!(server.hits(), 2);

    // Once the interval has passed, it may look once more.
    tokio::time::sleep(interval + Duration::from_millis(50)).await;
    assert_eq!(
        cache.key_for(url, Some("made-up")).await.unwrap_err(),
        CryptoError::UnknownKey
    );
    assert_eq!(server.hits(), 3);
    // Known keys are still served from memory.
    cache.key_for(url, Some(&tool_key().kid)).await.unwrap();
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn cache_refetches_after_max_age_and_drops_withdrawn_keys() {
    let body = Arc::new(Mutex::new(set_of(&[tool_key(), other_key()])));
    let server = serve(Reply::Json(Arc::clone(&body))).await;
    let cache = JwksCache::default()
        .with_min_refresh_interval(Duration::ZERO)
        .with_max_age(Duration::from_millis(100));
    let url = server.url.as_str();

    cache.key_for(url, Some(&other_key().kid)).await.unwrap();
    *body.lock().unwrap() = set_of(&[tool_key()]);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        cache
            .key_for(url, Some(&other_key().kid))
            .await
            .unwrap_err(),
        CryptoError::UnknownKey
    );
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn cache_times_out_on_silent_server() {
    let server = serve(Reply::Hang).await;
    let cache = JwksCache::new(Duration::from_millis(300), DEFAULT_MAX_JWKS_BYTES);
    let started = Instant::now();
    let err = cache.key_for(&server.url, Some("k")).await.unwrap_err();
    assert_eq!(err, CryptoError::Timeout);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(server.hits(), 1);

    // Through the verifier it is a key fetch failure.
    let source = ToolKeySource::JwksUrl(server.url.clone());
    let token = tool_key().sign(&claims()).unwrap();
    let fresh = JwksCache::new(Duration::from_millis(300), DEFAULT_MAX_JWKS_BYTES);
    assert!(matches!(
        verify_tool_jwt(&token, &source, &fresh, &expect()).await,
        Err(JwtError::KeyFetch(_))
    ));
}

#[tokio::test]
async fn cache_refuses_oversized_response() {
    let limit = 256;
    // Declared too large up front.
    let big = jwks_json(&[tool_key().public_jwk.clone()]);
    assert!(big.len() > limit);
    let server = serve(Reply::Json(Arc::new(Mutex::new(big)))).await;
    let cache = JwksCache::new(Duration::from_secs(2), limit);
    assert_eq!(
        cache.key_for(&server.url, None).await.unwrap_err(),
        CryptoError::TooLarge { limit }
    );

    // No length given and the body never ends: only a cap enforced
    // while streaming answers before the timeout.
    let mut raw = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n".to_vec();
    raw.extend(std::iter::repeat_n(b' ', limit * 4));
    let server = serve(Reply::PartialThenHang(raw)).await;
    let cache = JwksCache::new(Duration::from_secs(5), limit);
    let started = Instant::now();
    assert_eq!(
        cache.key_for(&server.url, None).await.unwrap_err(),
        CryptoError::TooLarge { limit }
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn cache_reports_http_errors_and_garbage() {
    let server = serve(Reply::Raw(
        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_vec(),
    ))
    .await;
    let cache = JwksCache::default();
    assert_eq!(
        cache.key_for(&server.url, None).await.unwrap_err(),
        CryptoError::Fetch("HTTP status 404".to_owned())
    );

    let server = serve(Reply::Json(Arc::new(Mutex::new("<html>".to_owned())))).await;
    assert!(matches!(
        cache.key_for(&server.url, None).await.unwrap_err(),
        CryptoError::Fetch(_)
    ));

    // Within the refresh interval a failed URL is not retried.
    let hits = server.hits();
    assert!(cache.key_for(&server.url, None).await.is_err());
    assert_eq!(server.hits(), hits);
}

#[test]
fn cache_and_futures_are_send() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    fn assert_send<T: Send>(_: &T) {}
    assert_send_sync::<JwksCache>();
    // Handlers hold these futures across awaits on a multi-threaded runtime.
    let cache = JwksCache::default();
    let source = ToolKeySource::JwksUrl("http://127.0.0.1:9/".to_owned());
    let expect = expect();
    assert_send(&cache.key_for("http://127.0.0.1:9/", None));
    assert_send(&verify_tool_jwt("a.b.c", &source, &cache, &expect));
}
