//! The codec cost model: its priors, learning throughput and delivered
//! bits, and the keys of 10-bit and audio work.

use spotenc_proto::domain::Codec;

use super::catalogue::Hardware;
use super::model::{band, prior, Delivered, Demand, Key, Model, Observation, Output, Shape};
use super::tests::{cand, worker};

fn key(class: &str, family: &str, codec: Codec, preset: &str) -> Key {
    Key {
        class: class.into(),
        family: family.into(),
        codec,
        preset: preset.into(),
        band: "hd1080".into(),
    }
}

fn cpu_shape(vcpus: u32, slots: u32) -> Shape {
    Shape {
        hardware: Hardware::Cpu,
        gpu: String::new(),
        vcpus,
        slots,
    }
}

#[test]
fn priors_follow_the_documented_anchors() {
    let fps = |pps: f64| pps / super::model::PIXELS_1080P;
    // x264 medium: 5 fps per vCPU, 85% usable.
    let x264 = prior(
        &key("c", "libx264", Codec::H264, "medium"),
        &cpu_shape(16, 1),
    );
    assert!((fps(x264) - 68.0).abs() < 1e-9);
    // x265 medium: 0.9 fps per vCPU, about 5× dearer than x264.
    let x265 = prior(
        &key("c", "libx265", Codec::Hevc, "medium"),
        &cpu_shape(16, 1),
    );
    assert!((x264 / x265 - 5.0 / 0.9).abs() < 1e-9);
    // NVENC on a T4: 370 fps at P4 for H.264, 350 for HEVC, per engine.
    let t4 = Shape {
        hardware: Hardware::Nvenc,
        gpu: "T4".into(),
        vcpus: 4,
        slots: 1,
    };
    let nv = prior(&key("g", "nvenc", Codec::H264, "medium"), &t4);
    assert!((fps(nv) - 370.0).abs() < 1e-9);
    let nv_hevc = prior(&key("g", "nvenc", Codec::Hevc, "medium"), &t4);
    assert!((fps(nv_hevc) - 350.0).abs() < 1e-9);
    // Slower presets are slower.
    let slow = prior(&key("c", "libx264", Codec::H264, "slow"), &cpu_shape(16, 1));
    assert!(slow < x264);
    assert_eq!(band(1920, 1080), "hd1080");
    assert_eq!(band(3840, 2160), "uhd");
    assert_eq!(band(640, 360), "sd");
}

#[test]
fn the_estimator_moves_from_the_prior_to_what_it_sees() {
    let k = key("c6i.4xlarge", "libx264", Codec::H264, "medium");
    let shape = cpu_shape(16, 2);
    let p = prior(&k, &shape);
    let mut m = Model::default();
    assert_eq!(m.throughput(&k, &shape), p);
    let seen = p / 4.0;
    for _ in 0..30 {
        m.learn(&[Observation {
            delivered: None,
            key: k.clone(),
            pixels_per_second: seen,
        }]);
    }
    let got = m.throughput(&k, &shape);
    // (3·p + 30·p/4) / 33
    assert!((got - (3.0 * p + 30.0 * seen) / 33.0).abs() < 1e-6);
    assert!((got - seen).abs() < 0.1 * p);
    assert_eq!(Key::decode(&k.encode()), Some(k));
}

#[test]
fn a_multi_rendition_encode_is_apportioned_by_predicted_share() {
    let d = Demand {
        outputs: vec![
            Output {
                codec: Codec::H264,
                preset: "medium".into(),
                width: 1920,
                height: 1080,
                ten_bit: false,
            },
            Output {
                codec: Codec::H264,
                preset: "medium".into(),
                width: 960,
                height: 540,
                ten_bit: false,
            },
        ],
        frames: 100,
        audio: None,
    };
    let shape = cpu_shape(8, 1);
    let keys = d.keys("c6i.2xlarge", Hardware::Cpu, &[]);
    let m = Model::default();
    let predicted = d.seconds(&keys, &shape, &m);
    // Observing exactly the predicted time teaches each key its prior.
    for o in d.observe(&keys, &shape, &m, predicted) {
        let p = prior(&o.key, &shape);
        assert!((o.pixels_per_second - p).abs() / p < 1e-9, "{o:?}");
    }
}

#[test]
fn each_key_learns_bits_and_psnr_beside_throughput() {
    let k = key("c6i.4xlarge", "libx264", Codec::H264, "medium");
    let mut m = Model::default();
    let seen = |bpp: f64, psnr: f64| Observation {
        key: k.clone(),
        pixels_per_second: 1e7,
        delivered: Some(Delivered {
            bits_per_pixel: bpp,
            psnr,
        }),
    };
    m.learn(&[seen(0.04, 40.0), seen(0.06, 42.0)]);
    m.learn(&[Observation {
        delivered: None,
        ..seen(0.0, 0.0)
    }]);
    let s = m.samples[&k.encode()];
    assert_eq!((s.n, s.measured), (3, 2));
    assert!((s.bits_per_pixel().unwrap() - 0.05).abs() < 1e-12);
    assert!((s.psnr().unwrap() - 41.0).abs() < 1e-12);
    // Bits do not depend on the machine: another class borrows them.
    let other = key("c7i.2xlarge", "libx264", Codec::H264, "medium");
    assert!((m.bits_per_pixel(&other).unwrap() - 0.05).abs() < 1e-12);
    assert_eq!(
        m.bits_per_pixel(&key("c6i.4xlarge", "libx265", Codec::H264, "medium")),
        None
    );
}

/// The worked example of docs/cost-model.md: one minute of 1080p30 H.264
/// medium, x264 at 0.060 bits per pixel against NVENC at 0.085, delivered
/// at $2 per GB over the asset's life.
#[test]
fn priced_delivered_bytes_can_outweigh_encode_time() {
    let minute = cand(1, Codec::H264, 1920, 1080, 0, 0);
    let minute = Demand {
        frames: 1800,
        ..minute.demand.into_owned()
    };
    let mut x264 = worker("c6i-4xlarge-spot", &[Codec::H264]);
    let mut gpu = worker("g4dn-xlarge-spot", &[Codec::H264]);
    let mut m = Model::default();
    for (w, family, bpp) in [(&x264, "libx264", 0.060), (&gpu, "nvenc", 0.085)] {
        m.learn(&[Observation {
            key: key(&w.class, family, Codec::H264, "medium"),
            pixels_per_second: prior(&key(&w.class, family, Codec::H264, "medium"), &w.shape()),
            delivered: Some(Delivered {
                bits_per_pixel: bpp,
                psnr: 40.0,
            }),
        }]);
    }
    // Time only: the GPU is cheaper.
    assert!(gpu.cost(&minute, &m) < x264.cost(&minute, &m));
    x264.delivered_price_per_gb = 2.0;
    gpu.delivered_price_per_gb = 2.0;
    // 1800 × 1920 × 1080 px × 0.060 bit / 8 = 27.99 MB → $0.05599.
    let px = 1800.0 * 1920.0 * 1080.0;
    assert!((x264.delivered_cost(&minute, &m) - px * 0.060 / 8e9 * 2.0).abs() < 1e-12);
    assert!((gpu.delivered_cost(&minute, &m) - px * 0.085 / 8e9 * 2.0).abs() < 1e-12);
    // With the bytes priced, x264 is cheaper.
    assert!(x264.cost(&minute, &m) < gpu.cost(&minute, &m));
}

#[test]
fn ten_bit_work_is_keyed_and_priced_apart_from_eight_bit() {
    let mut d = Demand {
        outputs: vec![Output {
            codec: Codec::Hevc,
            preset: "medium".into(),
            width: 1920,
            height: 1080,
            ten_bit: false,
        }],
        frames: 1800,
        audio: None,
    };
    let shape = cpu_shape(8, 1);
    let model = Model::default();
    let eight = d.keys("c6i.2xlarge", Hardware::Cpu, &[]);
    assert_eq!(eight[0].family, "libx265");
    let eight_s = d.seconds_on("c6i.2xlarge", Hardware::Cpu, |_, _| false, &shape, &model);
    d.outputs[0].ten_bit = true;
    let ten = d.keys("c6i.2xlarge", Hardware::Cpu, &[]);
    assert_eq!(ten[0].family, "libx265-10");
    assert_eq!(Key::decode(&ten[0].encode()).unwrap(), ten[0]);
    let ten_s = d.seconds_on("c6i.2xlarge", Hardware::Cpu, |_, _| false, &shape, &model);
    // x265 at 10 bits took 1.09x the time of 8 bits here.
    assert!(
        (ten_s / eight_s - 1.0 / 0.92).abs() < 1e-9,
        "{ten_s} / {eight_s}"
    );
    assert_eq!(ten_s, d.seconds(&ten, &shape, &model));
    // What it learns goes to the 10-bit key only.
    let obs = d.observe(&ten, &shape, &model, 60.0);
    assert_eq!(obs[0].key.family, "libx265-10");
    let mut learned = Model::default();
    learned.learn(&obs);
    assert!(learned.samples.contains_key(&ten[0].encode()));
    assert!(!learned.samples.contains_key(&eight[0].encode()));
}

#[test]
fn an_audio_task_costs_its_track_not_a_flat_guess() {
    use super::model::AudioWork;
    let shape = cpu_shape(8, 1);
    let model = Model::default();
    let seconds = |audio: Option<AudioWork>| {
        let d = Demand {
            audio,
            ..Demand::default()
        };
        d.seconds_on("c6i.2xlarge", Hardware::Cpu, |_, _| false, &shape, &model)
    };
    assert_eq!(seconds(None), super::model::SMALL_TASK_SECONDS);
    let hour_51 = AudioWork {
        seconds: 3600.0,
        channels: 6,
        encode: true,
    };
    let s = seconds(Some(hour_51));
    assert!(
        (s - (3600.0 * 6.0 * 0.0104 + 3600.0 * 0.002)).abs() < 1e-9,
        "{s}"
    );
    let stereo = seconds(Some(AudioWork {
        channels: 2,
        ..hour_51
    }));
    assert!(stereo < s, "5.1 costs more than stereo");
    let copy = seconds(Some(AudioWork {
        encode: false,
        ..hour_51
    }));
    assert!(copy < stereo && copy >= super::model::SMALL_TASK_SECONDS);
}
