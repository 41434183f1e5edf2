//! Typed configurations from TOML, YAML and JSON files: the loader's settings as the example.

use std::path::PathBuf;

use delira::config::{self, ConfigError, Format};
use delira::data::LoaderConfig;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("delira-config-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const FILES: [(&str, &str); 4] = [
    ("loader.toml", "batch_size = 4\nworkers = 2\n"),
    ("loader.yaml", "batch_size: 4\nworkers: 2\n"),
    ("loader.yml", "batch_size: 4\nworkers: 2\n"),
    ("loader.json", "{ \"batch_size\": 4, \"workers\": 2 }"),
];

#[test]
fn every_format_gives_the_builders_value_with_documented_defaults() {
    let dir = scratch("formats");
    let expected = LoaderConfig::builder().batch_size(4).workers(2).build();
    for (name, text) in FILES {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let read: LoaderConfig = config::from_path(&path).unwrap();
        assert_eq!(read, expected, "{name}");
        assert_eq!((read.prefetch, read.seed, read.drop_last), (2, 0, false));
    }
    // Written and read back, in every format.
    for (name, _) in FILES {
        let path = dir.join(format!("round-trip-{name}"));
        config::to_path(&expected, &path).unwrap();
        assert_eq!(
            config::from_path::<LoaderConfig>(&path).unwrap(),
            expected,
            "{name}"
        );
    }
}

#[test]
fn an_unknown_key_is_named_with_the_file() {
    let dir = scratch("unknown");
    let files = [
        ("loader.toml", "batch_size = 4\nwrokers = 2\n"),
        ("loader.yaml", "batch_size: 4\nwrokers: 2\n"),
        ("loader.json", "{ \"batch_size\": 4, \"wrokers\": 2 }"),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let err = config::from_path::<LoaderConfig>(&path).unwrap_err();
        assert_eq!(err.key(), Some("wrokers"), "{name}");
        let message = err.to_string();
        let start = format!(
            "`{}`: key `wrokers`: unknown field `wrokers`, expected one of",
            path.display()
        );
        assert!(message.starts_with(&start), "{message}");
        assert!(message.contains("`workers`"), "{message}");
    }
}

#[test]
fn a_wrong_type_is_named_with_the_file() {
    let dir = scratch("type");
    let files = [
        ("loader.toml", "batch_size = \"four\"\n"),
        ("loader.yaml", "batch_size: four\n"),
        ("loader.json", "{ \"batch_size\": \"four\" }"),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let err = config::from_path::<LoaderConfig>(&path).unwrap_err();
        assert_eq!(err.key(), Some("batch_size"), "{name}");
        let message = err.to_string();
        let start = format!(
            "`{}`: key `batch_size`: invalid type: string \"four\", expected",
            path.display()
        );
        assert!(message.starts_with(&start), "{message}");
    }
}

#[test]
fn an_unknown_extension_or_a_missing_file_is_an_error() {
    let dir = scratch("extension");
    let err = config::from_path::<LoaderConfig>(dir.join("loader.ini")).unwrap_err();
    assert!(matches!(err, ConfigError::UnknownFormat { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "`{}` has no known configuration format; name it `.toml`, `.yaml`, `.yml` or `.json`",
            dir.join("loader.ini").display()
        )
    );
    let err = config::from_path::<LoaderConfig>(dir.join("missing.toml")).unwrap_err();
    assert!(matches!(err, ConfigError::File { .. }), "{err}");
    assert_eq!(
        Format::of_path(std::path::Path::new("a.YML")),
        Some(Format::Yaml)
    );
}

/// The data part of an experiment's settings, nesting the runtime's own configurations.
#[derive(Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct DataSettings {
    loader: LoaderConfig,
    #[serde(default)]
    sampler: delira::data::SamplerConfig,
    split: delira::data::split::KFoldConfig,
}

#[test]
fn nested_runtime_configs_read_alike_and_name_the_full_key_path() {
    use delira::data::SamplerKind;
    use delira::data::split::KFoldConfig;

    let dir = scratch("nested");
    let files = [
        (
            "data.toml",
            "[loader]\nbatch_size = 2\n[sampler]\nkind = \"sequential\"\n[split]\nk = 3\ngroup = true\n",
        ),
        (
            "data.yaml",
            "loader:\n  batch_size: 2\nsampler:\n  kind: sequential\nsplit:\n  k: 3\n  group: true\n",
        ),
        (
            "data.json",
            r#"{"loader": {"batch_size": 2}, "sampler": {"kind": "sequential"}, "split": {"k": 3, "group": true}}"#,
        ),
    ];
    let expected = DataSettings {
        loader: LoaderConfig::builder().batch_size(2).build(),
        sampler: delira::data::SamplerConfig::builder()
            .kind(SamplerKind::Sequential)
            .build(),
        split: KFoldConfig::builder().k(3).group(true).build(),
    };
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        assert_eq!(
            config::from_path::<DataSettings>(&path).unwrap(),
            expected,
            "{name}"
        );

        let misspelt = text.replacen("group", "gruop", 1);
        std::fs::write(&path, misspelt).unwrap();
        let err = config::from_path::<DataSettings>(&path).unwrap_err();
        assert_eq!(err.key(), Some("split.gruop"), "{name}: {err}");
        assert!(
            err.to_string()
                .contains("key `split.gruop`: unknown field `gruop`, expected one of"),
            "{name}: {err}"
        );
    }
}
