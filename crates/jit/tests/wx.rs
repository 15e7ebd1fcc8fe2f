//! W^X of the JIT's code pages, read from /proc/self/maps. This test has a binary of its
//! own: with other tests compiling code in parallel in the same process, the kernel could
//! hand a freed code range straight to another test's program, and the "gone after drop"
//! check would see that one.

use bpfkit_jit::Jit;

fn asm(text: &str) -> Vec<bpfkit_isa::RawInsn> {
    bpfkit_asm::assemble(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn code_memory_is_never_writable_and_executable() {
    let j = Jit::from_insns(asm("mov %r0, 7\nexit")).unwrap();
    let addr = j.code_addr();
    let maps = std::fs::read_to_string("/proc/self/maps").expect("/proc/self/maps");
    let line = maps
        .lines()
        .find(|l| {
            let range = l.split_whitespace().next().unwrap();
            let (s, e) = range.split_once('-').unwrap();
            let (s, e) = (
                u64::from_str_radix(s, 16).unwrap(),
                u64::from_str_radix(e, 16).unwrap(),
            );
            s <= addr && addr < e
        })
        .expect("the code is mapped");
    let perms = line.split_whitespace().nth(1).unwrap();
    assert!(perms.starts_with("r-x"), "code mapping is {perms}: {line}");
    drop(j);
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let still = maps.lines().any(|l| {
        let range = l.split_whitespace().next().unwrap();
        let (s, e) = range.split_once('-').unwrap();
        let (s, e) = (
            u64::from_str_radix(s, 16).unwrap(),
            u64::from_str_radix(e, 16).unwrap(),
        );
        s <= addr && addr < e && l.split_whitespace().nth(1).unwrap().contains('x')
    });
    assert!(
        !still,
        "the code mapping is still executable after the drop"
    );
}
