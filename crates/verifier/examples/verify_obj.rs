//! Developer tool: verify the programs of an object and print the JSON reports
//! (`cargo run -p bpfkit-verifier --example verify_obj FILE.o [PROG] [INSN_LIMIT]`).

fn main() {
    let mut a = std::env::args().skip(1);
    let path = a
        .next()
        .expect("usage: verify_obj FILE.o [PROG] [INSN_LIMIT]");
    let only = a.next();
    let limit: u64 = a
        .next()
        .and_then(|x| x.parse().ok())
        .unwrap_or(bpfkit_verifier::BPF_COMPLEXITY_LIMIT_INSNS);
    let bytes = std::fs::read(&path).expect("read");
    let obj = bpfkit_object::Object::parse(&bytes).expect("parse");
    let linked = obj.link().expect("link");
    for p in &linked.programs {
        if only.as_ref().is_some_and(|o| *o != p.name) {
            continue;
        }
        let opts = bpfkit_verifier::Options {
            insn_limit: limit,
            map_fields: Some(bpfkit_verifier::btf_fields::from_btf(
                obj.btf.as_ref(),
                &linked.maps,
            )),
            funcs: bpfkit_verifier::btf_funcs::from_object(&obj, &linked),
            ..Default::default()
        };
        let rep = bpfkit_verifier::verify(p, &linked.maps, &opts);
        println!("{}", serde_json::to_string(&rep).expect("json"));
    }
}
