//! `deploy render` as a pure function: what it refuses, and that the
//! catalogue it writes for the coordinator is the catalogue it was given.

use super::*;
use spotenc_core::cost::catalogue::parse_entries;
use spotenc_core::cost::pools::parse_pools;

fn catalogue(text: &str) -> Catalogue {
    parse_pools(text, "pools.toml").expect("valid catalogue")
}

const SAMPLE: &str = r#"
[[pools]]
name = "g4dn-xlarge-spot"
zones = ["us-east-1a", "us-east-1b"]
[[pools]]
name = "c6i-4xlarge-spot"
[[pools]]
name = "c6i-4xlarge-ondemand"
[[pools]]
name = "g4dn-xlarge-ondemand"
"#;

fn docs(files: &[RenderedFile], path: &str) -> Vec<serde_yaml::Value> {
    let f = files.iter().find(|f| f.path == path).expect(path);
    serde_yaml::Deserializer::from_str(&f.text)
        .map(|d| serde::Deserialize::deserialize(d).expect("yaml"))
        .collect()
}

#[test]
fn the_coordinators_catalogue_is_the_one_rendered() {
    let c = catalogue(SAMPLE);
    let back = Catalogue::load(&parse_entries(&catalogue_toml(&c)).unwrap()).unwrap();
    for (name, pool) in &c.pools {
        let mut got = back.get(name).expect(name).clone();
        // Written entries come back with the file's origin.
        got.origin = pool.origin;
        assert_eq!(&got, pool);
    }
}

#[test]
fn every_pool_gets_its_objects_and_the_baseline_keeps_one_worker() {
    let c = catalogue(SAMPLE);
    let files = render(&c, &RenderOptions::default()).unwrap();
    let kustomization = &docs(&files, "kustomization.yaml")[0];
    let resources: Vec<&str> = kustomization["resources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    for f in &files {
        let listed = resources.contains(&f.path.as_str());
        let expected = f.path != "kustomization.yaml" && f.path != NODE_POOLS;
        assert_eq!(listed, expected, "{}", f.path);
    }
    let min = |pool: &str| {
        let d = docs(&files, &format!("pools/{pool}.yaml"));
        let so = d.iter().find(|d| d["kind"] == "ScaledObject").unwrap();
        so["spec"]["minReplicaCount"].as_u64().unwrap()
    };
    assert_eq!(min("g4dn-xlarge-spot"), 0);
    assert_eq!(min("c6i-4xlarge-spot"), 0);
    // The cheapest CPU on-demand pool is the baseline.
    assert_eq!(min("c6i-4xlarge-ondemand"), 1);
    assert_eq!(min("g4dn-xlarge-ondemand"), 0);
    let gpu = docs(&files, "pools/g4dn-xlarge-spot.yaml");
    let pod = &gpu[0]["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"],
        1
    );
    assert_eq!(pod["tolerations"][0]["key"], "nvidia.com/gpu");
    assert_eq!(pod["terminationGracePeriodSeconds"], 105);
}

#[test]
fn render_is_a_pure_function_of_its_inputs() {
    let c = catalogue(SAMPLE);
    let o = RenderOptions::default();
    assert_eq!(render(&c, &o).unwrap(), render(&c, &o).unwrap());
}

fn refused(text: &str, o: &RenderOptions) -> String {
    render(&catalogue(text), o).unwrap_err()
}

#[test]
fn objects_kubernetes_would_reject_are_refused_naming_pool_and_field() {
    let o = RenderOptions::default();
    let gpu_without_count = r#"
[[pools]]
name = "t4-pool"
capacity = "spot"
instance_type = "g4dn.xlarge"
hardware = "nvenc"
gpu = "T4"
vcpus = 4
memory = 16
slots = 3
price_per_hour = 0.2
max_workers = 4
"#;
    let e = refused(gpu_without_count, &o);
    assert!(e.contains("pool \"t4-pool\": gpus is missing"), "{e}");

    let e = refused(
        "[[pools]]\nname = \"C6i_Spot\"\ninstance_type = \"c6i.4xlarge\"\ncapacity = \"spot\"\n\
         hardware = \"cpu\"\nvcpus = 16\nmemory = 32\nslots = 2\nprice_per_hour = 0.3\nmax_workers = 3\n",
        &o,
    );
    assert!(
        e.contains("pool \"C6i_Spot\": name is not a DNS label"),
        "{e}"
    );

    let long = format!(
        "[[pools]]\nname = \"{}\"\ninstance_type = \"c6i.4xlarge\"\ncapacity = \"spot\"\n\
         hardware = \"cpu\"\nvcpus = 16\nmemory = 32\nslots = 2\nprice_per_hour = 0.3\nmax_workers = 3\n",
        "a".repeat(49)
    );
    assert!(refused(&long, &o).contains("name is not a DNS label"));

    let e = refused(
        "[[pools]]\nname = \"c6i-4xlarge-spot\"\nmax_workers = 0\n",
        &o,
    );
    assert!(
        e.contains("pool \"c6i-4xlarge-spot\": max_workers is 0"),
        "{e}"
    );

    let deadline = RenderOptions {
        notice_deadline_seconds: 120,
        ..RenderOptions::default()
    };
    assert!(refused(SAMPLE, &deadline).contains("--notice-deadline-seconds 120"));
    let baseline = RenderOptions {
        baseline_pool: Some("c6i-4xlarge-spot".into()),
        ..RenderOptions::default()
    };
    assert!(refused(SAMPLE, &baseline).contains("is not an on-demand pool"));
    let namespace = RenderOptions {
        namespace: "Spot Enc".into(),
        ..RenderOptions::default()
    };
    assert!(refused(SAMPLE, &namespace).contains("--namespace"));
    let redis = RenderOptions {
        redis: RedisChoice::External("10.0.0.5:6379".into()),
        ..RenderOptions::default()
    };
    assert!(refused(SAMPLE, &redis).contains("--redis-url"));
}

#[test]
fn a_non_empty_directory_is_refused_without_force() {
    let files = render(&catalogue(SAMPLE), &RenderOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
    let e = write(dir.path(), &files, false).unwrap_err();
    assert!(e.contains("is not empty: pass --force"), "{e}");
    assert!(!dir.path().join("kustomization.yaml").exists());
    write(dir.path(), &files, true).unwrap();
    assert!(dir.path().join("pools/g4dn-xlarge-spot.yaml").exists());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("keep.txt")).unwrap(),
        "mine"
    );
}
