//! Write a `recompress_rebuild` fuzz seed for a compressed file: `fuzz_seed IN OUT` writes
//! `u16 LE recipe length | recipe | plain form` (the layout fuzz/src/lib.rs reads).

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(input), Some(output)) = (args.next(), args.next()) else {
        eprintln!("usage: fuzz_seed IN OUT");
        std::process::exit(2);
    };
    let data = std::fs::read(&input).expect("read input");
    let mut plain = Vec::new();
    let a =
        ouk_recompress::analyze(&mut &data[..], &mut plain, &Default::default()).expect("analyze");
    let len = u16::try_from(a.recipe.len()).expect("recipe under 64 KiB");
    let mut seed = len.to_le_bytes().to_vec();
    seed.extend_from_slice(&a.recipe);
    seed.extend_from_slice(&plain);
    std::fs::write(&output, seed).expect("write seed");
}
