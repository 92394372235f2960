//! How every figure prints: the one place a unit is chosen for a value held in base units,
//! so a number reads the same in the terminal, the report and `compare` (as hyperfine's
//! `units.rs` does it). Results keep base units; nothing else formats a figure.

/// Requests per second: `75.6k`, `812`.
pub fn rate(v: f64) -> String {
    if v >= 100_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 10_000.0 {
        format!("{:.1}k", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// A duration given in microseconds.
pub fn us(v: f64) -> String {
    if v >= 1_000_000.0 {
        format!("{:.2} s", v / 1e6)
    } else if v >= 10_000.0 {
        format!("{:.1} ms", v / 1000.0)
    } else if v >= 1_000.0 {
        format!("{:.2} ms", v / 1000.0)
    } else {
        format!("{v:.0} µs")
    }
}

/// A duration given in nanoseconds (micro-benchmarks).
pub fn ns(v: f64) -> String {
    if v < 1000.0 {
        format!("{v:.0} ns")
    } else if v < 10_000.0 {
        format!("{:.2} µs", v / 1000.0)
    } else if v < 100_000.0 {
        format!("{:.1} µs", v / 1000.0)
    } else {
        us(v / 1000.0)
    }
}

/// A duration given in milliseconds.
pub fn ms(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1} s", v / 1000.0)
    } else if v >= 1_000.0 {
        format!("{:.2} s", v / 1000.0)
    } else if v >= 10.0 {
        format!("{v:.0} ms")
    } else {
        format!("{v:.1} ms")
    }
}

pub fn bytes(v: f64) -> String {
    if v >= 10.0 * 1024.0 * 1024.0 {
        format!("{:.0} MiB", v / 1024.0 / 1024.0)
    } else if v >= 10.0 * 1024.0 {
        format!("{:.0} KiB", v / 1024.0)
    } else {
        format!("{v:.0} B")
    }
}

/// A per-request count: two decimals, more when it is small but not zero.
pub fn per_request(v: f64) -> String {
    if v == 0.0 || v >= 0.1 {
        format!("{v:.2}")
    } else if v >= 0.001 {
        format!("{v:.4}")
    } else {
        format!("{v:.6}")
    }
}

pub fn pct(v: f64) -> String {
    if v >= 0.9995 || v == 0.0 { format!("{:.0} %", v * 100.0) } else { format!("{:.1} %", v * 100.0) }
}

pub fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or_else(|| "–".to_owned(), f)
}

/// A count of entries or users: `10k`, `1M`, `12345`.
pub fn count(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// A plain quantity to three significant figures, trailing zeros dropped: `2.47`, `3600`,
/// `0.0004` (requests per lifetime, and the ticks of a logarithmic axis).
pub fn quantity(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let magnitude = v.abs().log10().floor();
    let decimals = (2.0 - magnitude).clamp(0.0, 12.0) as usize;
    let text = format!("{v:.decimals$}");
    if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_owned() } else { text }
}

/// A lifetime given in seconds: `1 s`, `100 s`, `1 h`.
pub fn seconds(v: f64) -> String {
    if v >= 3600.0 && v % 3600.0 == 0.0 { format!("{:.0} h", v / 3600.0) } else { format!("{} s", quantity(v)) }
}

/// CPU time per request, in microseconds, one decimal: the column or row names the unit.
pub fn cpu_us(v: f64) -> String {
    format!("{v:.1}")
}

/// CPUs' worth of time (foreign load): `0.25 CPU`.
pub fn cpus(v: f64) -> String {
    format!("{v:.2} CPU")
}

/// A ratio of two figures (engine/wrk, B/A).
pub fn ratio(v: f64) -> String {
    format!("{v:.2}")
}

/// A figure with its 95 % interval, each printed by `f`: `12.4 µs [11.9–13.0]`.
pub fn interval(median: f64, ci95: [f64; 2], f: impl Fn(f64) -> String) -> String {
    format!("{} [{}–{}]", f(median), f(ci95[0]), f(ci95[1]))
}

/// A ratio with its 95 % interval: `1.32× [1.25–1.41]`.
pub fn ratio_interval(median: f64, ci95: [f64; 2]) -> String {
    format!("{}× [{}–{}]", ratio(median), ratio(ci95[0]), ratio(ci95[1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_chosen_for_the_size() {
        assert_eq!(rate(75_604.75), "75.6k");
        assert_eq!(rate(123_456.0), "123k");
        assert_eq!(us(577.5), "578 µs");
        assert_eq!(us(1500.0), "1.50 ms");
        assert_eq!(us(4464.6), "4.46 ms");
        assert_eq!(ms(8814.8), "8.81 s");
        assert_eq!(ns(2345.0), "2.35 µs");
        assert_eq!(ns(512.4), "512 ns");
        assert_eq!(ms(0.0), "0.0 ms");
        assert_eq!(pct(0.000_099), "0.0 %");
        assert_eq!(pct(1.0), "100 %");
        assert_eq!(count(100_000), "100k");
        assert_eq!(per_request(0.0018), "0.0018");
        assert_eq!(interval(12_400.0, [11_900.0, 13_000.0], ns), "12.4 µs [11.9 µs–13.0 µs]");
        assert_eq!(ratio_interval(1.321, [1.25, 1.414]), "1.32× [1.25–1.41]");
        assert_eq!(cpus(0.25), "0.25 CPU");
        assert_eq!(quantity(2.4661), "2.47");
        assert_eq!(quantity(3600.0), "3600");
        assert_eq!(quantity(10.0), "10");
        assert_eq!(quantity(0.000_2), "0.0002");
        assert_eq!(quantity(0.632_12), "0.632");
        assert_eq!(seconds(3600.0), "1 h");
        assert_eq!(seconds(1000.0), "1000 s");
    }
}
