fn main() {
    let path = std::env::args().nth(1).expect("path");
    let bytes = std::fs::read(&path).unwrap();
    let name = bpfkit_object::object_name_from_path(std::path::Path::new(&path));
    let obj = match bpfkit_object::Object::parse_named(&bytes, &name) {
        Ok(o) => o,
        Err(e) => {
            println!("error: {e}");
            std::process::exit(1)
        }
    };
    for p in &obj.programs {
        println!("{p:?}");
    }
    for m in &obj.maps {
        println!("{m:?}");
    }
    for f in &obj.functions {
        println!("{f:?}");
    }
    println!("license {:?}", obj.license);
    match obj.link() {
        Ok(l) => {
            for p in &l.programs {
                println!("== {} ({} insns)", p.name, p.insns.len());
                for (i, (x, o)) in p.insns.iter().zip(&p.origins).enumerate() {
                    println!(
                        "{i:3} {x:?} {}:{}:{} {:?}",
                        o.section,
                        o.function,
                        o.insn_index,
                        o.line.as_ref().map(|l| (l.line, l.column, &l.text))
                    );
                }
            }
        }
        Err(e) => println!("link error: {e}"),
    }
}
