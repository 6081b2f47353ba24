//! The controller's API calls, checked at the HTTP boundary as kube-rs
//! documents it: the client talks to a `tower_test` mock service, and the
//! test plays the API server, asserting each request's method, path,
//! query, content type and body, in order. The coordinator is real (run
//! in-process on a loopback port with the embedded store).

use std::collections::HashMap;
use std::sync::Arc;

use http::{Method, Request, Response};
use kube::client::Body;
use kube::Client;
use serde_json::Value;
use tower_test::mock::{self, Handle};

use super::*;
use crate::reconcile::tests::worker_pool;

type ApiServer = Handle<Request<Body>, Response<Body>>;

/// A coordinator whose catalogue is exactly `c6i-4xlarge-spot`.
async fn coordinator(dir: &std::path::Path) -> Connection {
    let text = format!(
        "data_dir = {:?}\nbuiltin_pools = false\n[[pools]]\nname = \"c6i-4xlarge-spot\"\n",
        dir.display().to_string()
    );
    let config = spotenc_coordinator::config::load(&text, &HashMap::new()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(spotenc_coordinator::run(
        listener,
        config,
        std::future::pending(),
    ));
    Connection {
        url,
        token: None,
        tls_ca: None,
    }
}

/// The next request: its method, path and query, content type and body.
async fn next(server: &mut ApiServer) -> (Request<()>, Value, mock::SendResponse<Response<Body>>) {
    let (request, send) = server.next_request().await.expect("a request");
    let (parts, body) = request.into_parts();
    let bytes = body.collect_bytes().await.unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (Request::from_parts(parts, ()), json, send)
}

fn respond(send: mock::SendResponse<Response<Body>>, body: &Value) {
    send.send_response(
        Response::builder()
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap(),
    );
}

fn query(r: &Request<()>) -> String {
    r.uri().query().unwrap_or_default().to_string()
}

fn content_type(r: &Request<()>) -> String {
    r.headers()["content-type"].to_str().unwrap().to_string()
}

/// A WorkerPool that already carries the operator's finalizer.
fn held(name: &str) -> WorkerPool {
    let mut wp = worker_pool(name);
    wp.metadata.finalizers = Some(vec![FINALIZER.into()]);
    wp
}

/// `wp` as the API server shows it once `kubectl delete` ran.
fn deleted(mut wp: WorkerPool) -> WorkerPool {
    wp.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
    ));
    wp
}

fn context(client: Client, coordinator: Option<Connection>) -> Arc<Context> {
    Arc::new(Context::new(client, RenderOptions::default(), coordinator))
}

#[tokio::test]
async fn reconcile_applies_the_pools_objects_then_writes_the_coordinators_view() {
    let dir = tempfile::tempdir().unwrap();
    let conn = coordinator(dir.path()).await;
    let (service, mut server) = mock::pair::<Request<Body>, Response<Body>>();
    let wp = held("c6i-4xlarge-spot");
    let expected = desired_objects(&wp, &RenderOptions::default()).unwrap();
    let echo = serde_json::to_value(&wp).unwrap();

    let api = tokio::spawn(async move {
        for (path, want) in [
            "/apis/apps/v1/namespaces/spotenc/deployments/spotenc-worker-c6i-4xlarge-spot",
            "/apis/keda.sh/v1alpha1/namespaces/spotenc/scaledobjects/spotenc-worker-c6i-4xlarge-spot",
            "/apis/policy/v1/namespaces/spotenc/poddisruptionbudgets/spotenc-worker-c6i-4xlarge-spot",
        ]
        .into_iter()
        .zip(expected)
        {
            let (r, body, send) = next(&mut server).await;
            assert_eq!(r.method(), Method::PATCH);
            assert_eq!(r.uri().path(), path);
            let q = query(&r);
            assert!(q.contains("fieldManager=spotenc-operator") && q.contains("force=true"), "{q}");
            assert_eq!(content_type(&r), "application/apply-patch+yaml");
            assert_eq!(body, want, "{path}");
            respond(send, &body);
        }
        let (r, body, send) = next(&mut server).await;
        assert_eq!(r.method(), Method::PATCH);
        assert_eq!(
            r.uri().path(),
            "/apis/spotenc.io/v1alpha1/namespaces/spotenc/workerpools/c6i-4xlarge-spot/status"
        );
        assert_eq!(content_type(&r), "application/merge-patch+json");
        let status = &body["status"];
        assert_eq!(status["health"], "healthy", "{body}");
        assert_eq!(status["observedWorkers"], 0);
        assert_eq!(status["busyWorkers"], 0);
        assert_eq!(status["observedGeneration"], 3);
        respond(send, &echo);
        // Nothing else.
        assert!(server.next_request().await.is_none());
    });
    let client = Client::new(service, "default");
    let action = reconcile(Arc::new(wp), context(client, Some(conn)))
        .await
        .unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(30)));
    api.await.unwrap();
}

#[tokio::test]
async fn a_deleted_pool_keeps_its_finalizer_while_nobody_can_say_its_workers_are_idle() {
    let (service, mut server) = mock::pair::<Request<Body>, Response<Body>>();
    let wp = deleted(held("c6i-4xlarge-spot"));
    let echo = serde_json::to_value(&wp).unwrap();
    let api = tokio::spawn(async move {
        let (r, body, send) = next(&mut server).await;
        assert_eq!(r.method(), Method::PATCH);
        assert!(
            r.uri()
                .path()
                .ends_with("/workerpools/c6i-4xlarge-spot/status"),
            "{}",
            r.uri()
        );
        let reason = body["status"]["reason"].as_str().unwrap().to_string();
        assert!(
            reason.contains("cannot tell whether workers are busy"),
            "{reason}"
        );
        respond(send, &echo);
        // No finalizer removal, no delete.
        assert!(server.next_request().await.is_none());
    });
    let client = Client::new(service, "default");
    let ctx = context(client, None);
    let e = reconcile(Arc::new(wp.clone()), ctx.clone())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cannot tell"), "{e}");
    // The error policy backs off.
    assert_eq!(
        error_policy(Arc::new(wp.clone()), &e, ctx.clone()),
        Action::requeue(Duration::from_secs(5))
    );
    assert_eq!(
        error_policy(Arc::new(wp), &e, ctx.clone()),
        Action::requeue(Duration::from_secs(10))
    );
    drop(ctx);
    api.await.unwrap();
}

#[tokio::test]
async fn a_deleted_idle_pool_lets_its_objects_go() {
    let dir = tempfile::tempdir().unwrap();
    let conn = coordinator(dir.path()).await;
    let (service, mut server) = mock::pair::<Request<Body>, Response<Body>>();
    let wp = deleted(held("c6i-4xlarge-spot"));
    let echo = serde_json::to_value(&wp).unwrap();
    let api = tokio::spawn(async move {
        // The finalizer comes off (a JSON patch on the object itself); the
        // owner references then let Kubernetes collect the objects.
        let (r, body, send) = next(&mut server).await;
        assert_eq!(r.method(), Method::PATCH);
        assert_eq!(
            r.uri().path(),
            "/apis/spotenc.io/v1alpha1/namespaces/spotenc/workerpools/c6i-4xlarge-spot"
        );
        assert_eq!(content_type(&r), "application/json-patch+json");
        let ops: Vec<&str> = body
            .as_array()
            .unwrap()
            .iter()
            .map(|op| op["op"].as_str().unwrap())
            .collect();
        assert!(ops.contains(&"remove"), "{body}");
        assert!(body.to_string().contains(FINALIZER), "{body}");
        respond(send, &echo);
        assert!(server.next_request().await.is_none());
    });
    let client = Client::new(service, "default");
    let action = reconcile(Arc::new(wp), context(client, Some(conn)))
        .await
        .unwrap();
    assert_eq!(action, Action::await_change());
    api.await.unwrap();
}
