//! Prints the first segments `records::cut` makes of a file: `record_cut_dump FILE [N]`.
fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let bytes = std::fs::read(&args[1])?;
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20);
    let segs = ouk_delta::records::cut(&bytes);
    println!("{} segments", segs.len());
    for s in segs.iter().take(n) {
        let text = String::from_utf8_lossy(&bytes[s.start..s.end.min(s.start + 80)]);
        println!(
            "{:>8} {:>6} {:016x} {text}",
            s.start,
            s.end - s.start,
            s.key
        );
    }
    Ok(())
}
