//! Adapters at run time: several loaded by name on one base, switched with `set_adapter`, each
//! forecasting (and embedding) what the base with that adapter fused in does; the base weights
//! are not copied; bad names and adapters that do not fit are clear errors.

use std::path::{Path, PathBuf};

use chronos2::chronos2_core::pipeline::{ItemForecast, Pooling, PredictOptions, SeriesInput};
use chronos2::chronos2_core::train::export::{read_safetensors, write_head, write_peft_adapter, NamedTensor};
use chronos2::chronos2_core::train::{Adapter, LoraConfig};
use chronos2::finetune::fuse;
use chronos2::{Backend, BackendKind, Chronos2, LoadOptions, Precision};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tiny() -> PathBuf {
    root().join("tests/fixtures/models/tiny")
}

/// The reference's LoRA adapter of the tiny model (written by peft).
fn reference_lora() -> PathBuf {
    root().join("tests/fixtures/finetune/adapters/tiny_lora")
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chronos2-adapters-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn cpu(model: &Path, precision: Precision) -> Chronos2 {
    let options = LoadOptions { precision, compile: false };
    Chronos2::load_with(Some(model.to_str().unwrap()), Backend::Forced(BackendKind::from_name("cpu").unwrap()), options)
        .unwrap()
}

fn items() -> Vec<SeriesInput> {
    let series = |phase: f32, len: usize| -> Vec<f32> {
        (0..len).map(|t| 10.0 + 3.0 * ((t as f32) * 0.3 + phase).sin() + 0.05 * t as f32).collect()
    };
    let mut with_gap = series(1.0, 90);
    with_gap[40] = f32::NAN;
    vec![SeriesInput::univariate(series(0.0, 120)), SeriesInput::univariate(with_gap)]
}

fn forecast(model: &Chronos2) -> Vec<f32> {
    let out: Vec<ItemForecast> = model.predict(&items(), &PredictOptions::new(20), &mut |_, _| {}).unwrap();
    out.iter().flat_map(|f| f.quantiles.iter().copied()).collect()
}

fn embedding(model: &Chronos2) -> Vec<f32> {
    let out = model.embed(&items(), 256, None, Pooling::MeanContext, &mut |_, _| {}).unwrap();
    out.iter().flat_map(|e| e.values.iter().copied()).collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn max_abs(a: &[f32]) -> f32 {
    a.iter().map(|v| v.abs()).fold(0.0, f32::max)
}

/// A second LoRA for the tiny model: the reference's, with other values.
fn other_lora(dir: &Path) -> PathBuf {
    let tensors: Vec<NamedTensor> = read_safetensors(&reference_lora().join("adapter_model.safetensors"))
        .unwrap()
        .into_iter()
        .map(|mut t| {
            t.data.iter_mut().enumerate().for_each(|(i, v)| *v = -2.0 * *v + 0.05 * (i as f32 * 0.7).sin());
            t
        })
        .collect();
    std::fs::create_dir_all(dir).unwrap();
    write_peft_adapter(dir, &LoraConfig::default(), "tiny", &tensors).unwrap();
    dir.to_path_buf()
}

/// A trained head for the tiny model: its `output_patch_embedding` tensors, perturbed.
fn head(dir: &Path) -> PathBuf {
    let tensors: Vec<NamedTensor> = read_safetensors(&tiny().join("model.safetensors"))
        .unwrap()
        .into_iter()
        .filter(|t| t.name.starts_with("output_patch_embedding."))
        .map(|mut t| {
            t.data.iter_mut().enumerate().for_each(|(i, v)| *v += 0.02 * (i as f32 * 1.3).cos());
            t
        })
        .collect();
    std::fs::create_dir_all(dir).unwrap();
    write_head(dir, "tiny", &tensors).unwrap();
    dir.to_path_buf()
}

/// The base with `adapter` fused into a copy (the reference's way), loaded.
fn fused(adapter: &Path, name: &str) -> (Chronos2, PathBuf) {
    let out = temp(&format!("fused-{name}"));
    fuse(Some(tiny().to_str().unwrap()), adapter, &out).unwrap();
    (cpu(&out, Precision::Fp32), out)
}

#[test]
fn switching_adapters_gives_each_fused_model_and_none_gives_the_base() {
    let work = temp("switch");
    let other = other_lora(&work.join("other"));
    let head = head(&work.join("head"));
    let mut model = cpu(&tiny(), Precision::Fp32);
    let base_forecast = forecast(&model);
    let base_embedding = embedding(&model);
    let base_footprint = model.footprint();
    model.load_adapter("reference", &reference_lora()).unwrap();
    model.load_adapter("other", &other).unwrap();
    model.load_adapter("head", &head).unwrap();
    assert_eq!(model.adapter_names(), ["head", "other", "reference"]);

    // The base is not copied: its buffers are unchanged, the adapters hold only their matrices.
    let footprint = model.footprint();
    assert_eq!((footprint.total_params, footprint.bytes), (base_footprint.total_params, base_footprint.bytes));
    let values: usize =
        [reference_lora(), other.clone(), head.clone()].iter().map(|p| Adapter::load(p).unwrap().num_values()).sum();
    assert_eq!(footprint.adapter_params, values);
    assert!(footprint.adapter_bytes >= 4 * values);

    for (name, path) in [
        ("reference", reference_lora()),
        ("other", other.clone()),
        ("head", head.clone()),
        ("reference", reference_lora()),
    ] {
        model.set_adapter(Some(name)).unwrap();
        assert_eq!(model.active_adapter(), Some(name));
        let (fused_model, fused_dir) = fused(&path, name);
        let (expected, got) = (forecast(&fused_model), forecast(&model));
        let diff = max_diff(&got, &expected);
        assert!(diff <= 1e-5 * max_abs(&expected), "{name}: forecast differs from the fused model by {diff}");
        assert!(max_diff(&base_forecast, &expected) > 100.0 * diff.max(1e-7), "{name} must change the forecast");
        let (expected, got) = (embedding(&fused_model), embedding(&model));
        let diff = max_diff(&got, &expected);
        assert!(diff <= 1e-5 * max_abs(&expected), "{name}: embedding differs from the fused model by {diff}");
        std::fs::remove_dir_all(fused_dir).unwrap();
    }
    model.set_adapter(None).unwrap();
    assert_eq!(forecast(&model), base_forecast);
    assert_eq!(embedding(&model), base_embedding);

    // Unloading frees an adapter's matrices and leaves the others working.
    model.unload_adapter("other").unwrap();
    assert_eq!(model.adapter_names(), ["head", "reference"]);
    let rest: usize = [reference_lora(), head.clone()].iter().map(|p| Adapter::load(p).unwrap().num_values()).sum();
    assert_eq!(model.footprint().adapter_params, rest);
    let e = model.set_adapter(Some("other")).unwrap_err().to_string();
    assert!(e.contains("no adapter named `other` is loaded (loaded: head, reference)"), "{e}");
    model.set_adapter(Some("reference")).unwrap();
    let (fused_model, fused_dir) = fused(&reference_lora(), "reference-after-unload");
    assert!(max_diff(&forecast(&model), &forecast(&fused_model)) <= 1e-5 * max_abs(&forecast(&fused_model)));
    std::fs::remove_dir_all(fused_dir).unwrap();
    // The name can be loaded again.
    model.load_adapter("other", &other).unwrap();
    assert_eq!(model.footprint().adapter_params, values);
    std::fs::remove_dir_all(work).unwrap();
}

/// `fuse()` merges the active adapter into the loaded model: it then forecasts and embeds as the
/// model fused on disk, with no adapter left and no adapter memory; a second adapter loaded
/// afterwards applies on top of the fused model. Without an active adapter it is an error that
/// changes nothing.
#[test]
fn fuse_merges_the_active_adapter_into_the_loaded_model() {
    let work = temp("fuse-method");
    let other = other_lora(&work.join("other"));
    let mut model = cpu(&tiny(), Precision::Fp32);
    let base_forecast = forecast(&model);
    let e = model.fuse().unwrap_err().to_string();
    assert!(e.contains("fuse needs an active adapter: call set_adapter(Some(name)) first (loaded: none)"), "{e}");
    assert_eq!(forecast(&model), base_forecast, "a failed fuse changes nothing");

    model.load_adapter("reference", &reference_lora()).unwrap();
    model.load_adapter("other", &other).unwrap();
    let e = model.fuse().unwrap_err().to_string();
    assert!(e.contains("(loaded: other, reference)"), "{e}");
    model.set_adapter(Some("reference")).unwrap();
    let adapted = forecast(&model);
    model.fuse().unwrap();
    assert_eq!(model.active_adapter(), None);
    assert!(model.adapter_names().is_empty());
    let footprint = model.footprint();
    assert_eq!((footprint.adapter_params, footprint.adapter_bytes), (0, 0));

    let (fused_model, fused_dir) = fused(&reference_lora(), "method");
    let expected = forecast(&fused_model);
    assert_eq!(forecast(&model), expected, "the fused weights are those `chronos2 fuse` writes");
    assert_eq!(embedding(&model), embedding(&fused_model));
    assert!(max_diff(&adapted, &expected) <= 1e-5 * max_abs(&expected));
    assert!(max_diff(&base_forecast, &expected) > 1e-3 * max_abs(&expected), "the adapter must matter");
    // Fused in memory: the model still names its base's directory, and nothing was written.
    assert_eq!(model.model_dir(), tiny());
    assert!(matches!(model.source(), chronos2::chronos2_core::weights::ModelSource::Memory(_)));

    // Fusing again, on top of the fused model.
    model.load_adapter("other", &other).unwrap();
    model.set_adapter(Some("other")).unwrap();
    let twice = forecast(&model);
    model.fuse().unwrap();
    assert!(max_diff(&forecast(&model), &twice) <= 1e-5 * max_abs(&twice));
    assert!(max_diff(&twice, &expected) > 1e-3 * max_abs(&expected), "the second adapter must matter");
    assert_eq!(model.model_dir(), tiny());
    std::fs::remove_dir_all(fused_dir).unwrap();
    std::fs::remove_dir_all(work).unwrap();
}

#[test]
fn bad_names_and_adapters_that_do_not_fit_are_errors() {
    let mut model = cpu(&tiny(), Precision::Fp32);
    let e = model.set_adapter(Some("missing")).unwrap_err().to_string();
    assert!(e.contains("no adapter named `missing` is loaded (loaded: none)"), "{e}");
    model.load_adapter("a", &reference_lora()).unwrap();
    let e = model.load_adapter("a", &reference_lora()).unwrap_err().to_string();
    assert!(e.contains("an adapter named `a` is already loaded"), "{e}");
    let e = model.set_adapter(Some("b")).unwrap_err().to_string();
    assert!(e.contains("(loaded: a)"), "{e}");
    assert_eq!(model.active_adapter(), None);
    let e = model.unload_adapter("b").unwrap_err().to_string();
    assert!(e.contains("cannot unload `b`: no adapter of that name is loaded (loaded: a)"), "{e}");
    model.set_adapter(Some("a")).unwrap();
    let e = model.unload_adapter("a").unwrap_err().to_string();
    assert!(e.contains("cannot unload `a`: it is the active adapter"), "{e}");
    assert_eq!(model.adapter_names(), ["a"]);
    model.set_adapter(None).unwrap();

    // The tiny model's adapter on the small model: other shapes.
    let mut small = cpu(&root().join("tests/fixtures/models/small"), Precision::Fp32);
    let e = small.load_adapter("tiny", &reference_lora()).unwrap_err().to_string();
    assert!(e.contains("the adapter does not fit the model"), "{e}");
    assert!(small.adapter_names().is_empty());
    let e = small.load_adapter("x", &root().join("tests/fixtures/models/tiny")).unwrap_err().to_string();
    assert!(e.contains("is not an adapter"), "{e}");
}

/// On an int8 base the adapter runs in fp32 beside the quantized layers: it changes the int8
/// forecast as it changes the fp32 one (the same correction, up to the quantization error).
#[test]
fn adapters_run_on_a_quantized_base() {
    let work = temp("quantized");
    let mini = root().join("models/chronos2-mini");
    // A LoRA for chronos2-mini on every default target, with deterministic values.
    let config = LoraConfig::default();
    let base = read_safetensors(&mini.join("model.safetensors")).unwrap();
    let mut tensors = Vec::new();
    for t in base.iter().filter(|t| t.shape.len() == 2) {
        let module = t.name.strip_suffix(".weight").unwrap();
        if !config.targets_module(module) {
            continue;
        }
        let (out_dim, in_dim, r) = (t.shape[0], t.shape[1], config.rank);
        let values = |n: usize, s: f32, k: f32| (0..n).map(|i| s * (i as f32 * k).sin()).collect::<Vec<_>>();
        tensors.push(NamedTensor {
            name: format!("base_model.model.{module}.lora_A.weight"),
            shape: vec![r, in_dim],
            data: values(r * in_dim, 1.0 / (in_dim as f32).sqrt(), 0.37),
        });
        tensors.push(NamedTensor {
            name: format!("base_model.model.{module}.lora_B.weight"),
            shape: vec![out_dim, r],
            data: values(out_dim * r, 0.02, 0.91),
        });
    }
    std::fs::create_dir_all(&work).unwrap();
    write_peft_adapter(&work, &config, "chronos2-mini", &tensors).unwrap();

    let shift = |precision: Precision| -> (Vec<f32>, Vec<f32>) {
        let mut model = cpu(&mini, precision);
        let base = forecast(&model);
        model.load_adapter("lora", &work).unwrap();
        model.set_adapter(Some("lora")).unwrap();
        let adapted = forecast(&model);
        (base, adapted)
    };
    let (fp32_base, fp32_adapted) = shift(Precision::Fp32);
    let (int8_base, int8_adapted) = shift(Precision::Int8);
    let fp32_shift: Vec<f32> = fp32_adapted.iter().zip(&fp32_base).map(|(a, b)| a - b).collect();
    let int8_shift: Vec<f32> = int8_adapted.iter().zip(&int8_base).map(|(a, b)| a - b).collect();
    let quantization_error = max_diff(&int8_base, &fp32_base);
    let shift_error = max_diff(&int8_shift, &fp32_shift);
    assert!(max_abs(&fp32_shift) > 10.0 * shift_error, "shift {} vs error {shift_error}", max_abs(&fp32_shift));
    assert!(shift_error <= 4.0 * quantization_error.max(1e-6), "{shift_error} vs {quantization_error}");
    std::fs::remove_dir_all(work).unwrap();
}

/// `Chronos2::finetune` returns what it trained, usable at once: a LoRA adapter or a head to load
/// by name (forecasting as the written output fused into the base), a full model loaded.
#[test]
fn finetune_returns_the_trained_adapter_or_model() {
    use chronos2::chronos2_core::train::FinetuneMode;
    use chronos2::finetune::{FinetuneOptions, Trained};

    let work = temp("finetune");
    std::fs::create_dir_all(&work).unwrap();
    let mut model = cpu(&tiny(), Precision::Fp32);
    let base_forecast = forecast(&model);
    for mode in [FinetuneMode::Lora, FinetuneMode::Head, FinetuneMode::Full] {
        let mut options = FinetuneOptions::new(12, mode);
        (options.steps, options.batch_size, options.learning_rate) = (4, 4, Some(1e-3));
        let output = work.join(mode.name());
        let report = model.finetune(&items(), None, &options, &output, &mut |_| {}).unwrap();
        let expected = match mode {
            FinetuneMode::Full => forecast(&cpu(&output, Precision::Fp32)),
            _ => {
                let (fused_model, fused_dir) = fused(&output, mode.name());
                let f = forecast(&fused_model);
                std::fs::remove_dir_all(fused_dir).unwrap();
                f
            }
        };
        let got = match report.trained {
            Trained::Adapter(adapter) => {
                model.insert_adapter(mode.name(), adapter).unwrap();
                model.set_adapter(Some(mode.name())).unwrap();
                let f = forecast(&model);
                model.set_adapter(None).unwrap();
                f
            }
            Trained::Model(trained) => {
                assert_eq!(mode, FinetuneMode::Full);
                forecast(&trained)
            }
        };
        let diff = max_diff(&got, &expected);
        assert!(diff <= 1e-5 * max_abs(&expected), "{}: {diff}", mode.name());
        assert!(
            max_diff(&base_forecast, &expected) > 100.0 * diff.max(1e-7),
            "{} must change the forecast",
            mode.name()
        );
    }
    std::fs::remove_dir_all(work).unwrap();
}

fn fixture(name: &str) -> serde_json::Value {
    let path = root().join(format!("tests/fixtures/finetune/{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A JSON array of numbers (`null` = NaN), flattened.
fn flat(v: &serde_json::Value) -> Vec<f32> {
    match v {
        serde_json::Value::Array(items) => items.iter().flat_map(flat).collect(),
        serde_json::Value::Null => vec![f32::NAN],
        other => vec![other.as_f64().unwrap() as f32],
    }
}

/// Our forecast of one context at the model's 21 levels, laid out as the reference's
/// `(levels, horizon)`.
fn forecast_levels(model: &Chronos2, context: Vec<f32>, h: usize) -> Vec<f32> {
    let mut options = PredictOptions::new(h);
    options.quantile_levels = model.config().quantiles().to_vec();
    let out = model.predict(&[SeriesInput::univariate(context)], &options, &mut |_, _| {}).unwrap();
    let levels = options.quantile_levels.len();
    (0..levels).flat_map(|q| (0..h).map(move |t| (q, t))).map(|(q, t)| out[0].quantiles[t * levels + q]).collect()
}

fn assert_reference(got: &[f32], expected: &[f32], base: &[f32], what: &str) {
    let diff = max_diff(got, expected);
    assert!(diff <= 2e-5 * max_abs(expected), "{what}: differs from the reference's forecast by {diff}");
    assert!(max_diff(base, expected) > 100.0 * diff.max(1e-7), "{what}: the adapter must matter");
}

/// Our adapter (written by `chronos2 finetune`) and our fused model (`chronos2 fuse`), loaded and
/// run by the reference's `Chronos2Pipeline` when the fixtures were generated: we forecast what it
/// forecasts with them, through the adapter at run time, fused by us, and from the fused model.
#[test]
fn the_reference_forecasts_what_we_forecast_with_our_adapter_and_fused_model() {
    let c = fixture("ours_loaded_by_reference");
    let (context, h) = (flat(&c["context"]), c["prediction_length"].as_u64().unwrap() as usize);
    let (adapter_expected, base) = (flat(&c["adapter_quantiles"]), flat(&c["base_quantiles"]));
    let adapter = root().join(c["adapter"].as_str().unwrap());
    let mut model = cpu(&tiny(), Precision::Fp32);
    assert_reference(&forecast_levels(&model, context.clone(), h), &base, &adapter_expected, "base");
    model.load_adapter("ours", &adapter).unwrap();
    model.set_adapter(Some("ours")).unwrap();
    assert_reference(&forecast_levels(&model, context.clone(), h), &adapter_expected, &base, "adapter at run time");
    let fused = cpu(&root().join(c["fused"].as_str().unwrap()), Precision::Fp32);
    assert_reference(&forecast_levels(&fused, context.clone(), h), &flat(&c["fused_quantiles"]), &base, "fused model");
    let cli = chronos2::finetune::load_with_adapter(
        Some(tiny().to_str().unwrap()),
        Some(&adapter),
        Backend::Forced(BackendKind::from_name("cpu").unwrap()),
        LoadOptions::default(),
    )
    .unwrap();
    assert_reference(&forecast_levels(&cli, context, h), &adapter_expected, &base, "--adapter");
}

/// An MLX-style adapter written by numpy (`np.savez`, mlx-lm's `lora_a` / `lora_b`, from the
/// reference's PEFT adapter) forecasts what the reference forecasts through the PEFT adapter.
#[test]
fn a_numpy_npz_adapter_forecasts_as_the_reference() {
    let c = fixture("adapter_tiny_lora");
    let (context, h) = (flat(&c["context"]), c["prediction_length"].as_u64().unwrap() as usize);
    let (expected, base) = (flat(&c["quantiles"]), flat(&c["base_quantiles"]));
    let npz = root().join("tests/fixtures/finetune/adapters/tiny_lora_npz");
    let mut model = cpu(&tiny(), Precision::Fp32);
    model.load_adapter("dir", &npz).unwrap();
    model.load_adapter("file", &npz.join("adapters.npz")).unwrap();
    for name in ["dir", "file"] {
        model.set_adapter(Some(name)).unwrap();
        assert_reference(&forecast_levels(&model, context.clone(), h), &expected, &base, name);
    }
    let peft = Adapter::load(&reference_lora()).unwrap();
    assert_eq!(Adapter::load(&npz).unwrap().num_values(), peft.num_values());
}

/// MLX applies the same run-time adapters (uncompiled and compiled model): switching gives the
/// CPU backend's forecasts and embeddings, `None` gives MLX's own base forecast back, and `fuse()`
/// keeps the adapter's forecast.
#[cfg(feature = "mlx")]
#[test]
fn adapters_switch_on_mlx_as_on_cpu() {
    let work = temp("mlx");
    let head = head(&work.join("head"));
    let mut on_cpu = cpu(&tiny(), Precision::Fp32);
    for compile in [false, true] {
        let options = LoadOptions { precision: Precision::Fp32, compile };
        let mut on_mlx = Chronos2::load_with(
            Some(tiny().to_str().unwrap()),
            Backend::Forced(BackendKind::from_name("mlx").unwrap()),
            options,
        )
        .unwrap();
        let mlx_base = forecast(&on_mlx);
        for model in [&mut on_mlx, &mut on_cpu] {
            if !model.adapter_names().contains(&"reference") {
                model.load_adapter("reference", &reference_lora()).unwrap();
                model.load_adapter("head", &head).unwrap();
            }
        }
        for name in ["reference", "head"] {
            on_mlx.set_adapter(Some(name)).unwrap();
            on_cpu.set_adapter(Some(name)).unwrap();
            let (expected, got) = (forecast(&on_cpu), forecast(&on_mlx));
            let diff = max_diff(&got, &expected);
            assert!(diff <= 1e-5 * max_abs(&expected), "{name} (compile {compile}): MLX differs from CPU by {diff}");
            assert!(max_diff(&mlx_base, &got) > 100.0 * diff.max(1e-7), "{name} must change MLX's forecast");
            let (expected, got) = (embedding(&on_cpu), embedding(&on_mlx));
            let diff = max_diff(&got, &expected);
            assert!(diff <= 1e-5 * max_abs(&expected), "{name} (compile {compile}): MLX embedding differs by {diff}");
        }
        on_mlx.set_adapter(None).unwrap();
        assert_eq!(forecast(&on_mlx), mlx_base);
        on_mlx.unload_adapter("head").unwrap();
        assert_eq!(on_mlx.adapter_names(), ["reference"]);
        assert_eq!(on_mlx.footprint().adapter_params, Adapter::load(&reference_lora()).unwrap().num_values());
        // Fused into the MLX model (compiled again when compile is on): the adapter's forecast.
        on_mlx.set_adapter(Some("reference")).unwrap();
        let adapted = forecast(&on_mlx);
        on_mlx.fuse().unwrap();
        assert!(on_mlx.adapter_names().is_empty());
        let diff = max_diff(&forecast(&on_mlx), &adapted);
        assert!(diff <= 1e-5 * max_abs(&adapted), "compile {compile}: fused MLX differs from the adapter by {diff}");
    }
    std::fs::remove_dir_all(work).unwrap();
}

/// PEFT configs that choose modules, ranks and scalings (`rank_pattern`, `alpha_pattern`,
/// `layers_to_transform` / `layers_pattern`, a regex or a list `target_modules`,
/// `exclude_modules`, `use_rslora`; saved by peft or edited after saving): we forecast what the
/// reference forecasts through peft, at run time and fused; an `r` (or `rank_pattern`) that
/// disagrees with the weights is refused, as the reference refuses it.
#[test]
fn peft_configs_are_read_as_peft_reads_them() {
    let c = fixture("peft_patterns");
    let (context, h) = (flat(&c["context"]), c["prediction_length"].as_u64().unwrap() as usize);
    let base = flat(&c["base_quantiles"]);
    let full = flat(&c["full"]["quantiles"]);
    let cases = c["cases"].as_object().unwrap();
    assert_eq!(cases.len(), 14);
    for (name, case) in cases {
        let dir = root().join(case["adapter"].as_str().unwrap());
        if let Some(reason) = case["refused"].as_str() {
            let e = Adapter::load(&dir).unwrap_err().to_string();
            assert!(reason.contains("size mismatch"), "{name}: {reason}");
            assert!(e.contains("peft refuses this size mismatch") && e.contains("lora A has 8 rows"), "{name}: {e}");
            let out = temp(&format!("fused-{name}"));
            assert!(fuse(Some(tiny().to_str().unwrap()), &dir, &out).is_err(), "{name}");
            assert!(!out.exists(), "{name}: fuse left {}", out.display());
            continue;
        }
        let expected = flat(&case["quantiles"]);
        let mut model = cpu(&tiny(), Precision::Fp32);
        model.load_adapter(name, &dir).unwrap();
        model.set_adapter(Some(name)).unwrap();
        let got = forecast_levels(&model, context.clone(), h);
        assert_reference(&got, &expected, &base, &format!("{name} at run time"));
        if name.starts_with("edited_") {
            // the weights hold every module: the config's selection must be what changed it
            assert!(max_diff(&full, &expected) > 100.0 * max_diff(&got, &expected).max(1e-7), "{name}");
        }
        let (fused, dir) = fused(&dir, &format!("peft-{name}"));
        assert_reference(&forecast_levels(&fused, context.clone(), h), &expected, &base, &format!("{name} fused"));
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Adapters without tensors, with NaN, or two adapters in one directory are refused, naming
/// the files (and `fuse` writes nothing).
#[test]
fn empty_mixed_and_non_finite_adapters_are_refused() {
    let peft_dir = reference_lora();
    let check = |dir: &Path, wants: &[&str]| {
        let e = Adapter::load(dir).unwrap_err().to_string();
        for w in wants {
            assert!(e.contains(w), "{}: {e}", dir.display());
        }
        let out = temp("refused-fuse");
        assert!(fuse(Some(tiny().to_str().unwrap()), dir, &out).is_err());
        assert!(!out.exists());
    };
    // an empty safetensors
    let empty = temp("empty-peft");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::copy(peft_dir.join("adapter_config.json"), empty.join("adapter_config.json")).unwrap();
    chronos2::chronos2_core::train::export::write_safetensors(&empty.join("adapter_model.safetensors"), &[]).unwrap();
    check(&empty, &["adapter_model.safetensors", "the adapter holds no tensors"]);
    // an empty npz
    let empty_npz = temp("empty-npz");
    std::fs::create_dir_all(&empty_npz).unwrap();
    let npz_src = root().join("tests/fixtures/finetune/adapters/tiny_lora_npz");
    std::fs::copy(npz_src.join("adapter_config.json"), empty_npz.join("adapter_config.json")).unwrap();
    chronos2::chronos2_core::train::npz::write_npz(&empty_npz.join("adapters.npz"), &[]).unwrap();
    check(&empty_npz, &["adapters.npz", "the adapter holds no arrays"]);
    // PEFT + head, PEFT + npz
    let mixed = temp("mixed");
    std::fs::create_dir_all(&mixed).unwrap();
    for f in ["adapter_config.json", "adapter_model.safetensors"] {
        std::fs::copy(peft_dir.join(f), mixed.join(f)).unwrap();
    }
    let head_dir = head(&temp("mixed-head-src"));
    for f in ["head.safetensors", "head_config.json"] {
        std::fs::copy(head_dir.join(f), mixed.join(f)).unwrap();
    }
    check(&mixed, &["more than one adapter", "adapter_model.safetensors", "head.safetensors"]);
    std::fs::remove_file(mixed.join("head.safetensors")).unwrap();
    std::fs::remove_file(mixed.join("head_config.json")).unwrap();
    std::fs::copy(npz_src.join("adapters.npz"), mixed.join("adapters.npz")).unwrap();
    check(&mixed, &["more than one adapter", "adapter_model.safetensors", "adapters.npz"]);
    // a NaN in the adapter: its own file and tensor are named
    let nan = temp("nan-peft");
    std::fs::create_dir_all(&nan).unwrap();
    std::fs::copy(peft_dir.join("adapter_config.json"), nan.join("adapter_config.json")).unwrap();
    let mut tensors = read_safetensors(&peft_dir.join("adapter_model.safetensors")).unwrap();
    tensors[3].data[5] = f32::NAN;
    let bad_name = tensors[3].name.clone();
    chronos2::chronos2_core::train::export::write_safetensors(&nan.join("adapter_model.safetensors"), &tensors)
        .unwrap();
    check(&nan, &["adapter_model.safetensors", &bad_name, "non-finite", "flat index 5"]);
    for d in [empty, empty_npz, mixed, head_dir, nan] {
        let _ = std::fs::remove_dir_all(d);
    }
}
