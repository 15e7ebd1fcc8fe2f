//! How the developer tools (`klog`, `mutprobe`, `caps_compare`) prepare an object the way
//! loaders of such objects do before it is loaded by hand.

use bpfkit_object::model::prog_type;
use bpfkit_object::Object;

/// Programs in sections libbpf does not recognise are XDP (`--prog-type xdp`), and maps
/// declared with `max_entries = 0` get 64 entries (they are sized at load time).
pub fn as_loaders_do(obj: &mut Object) {
    obj.set_unknown_prog_type(prog_type::XDP);
    let empty: Vec<String> = obj
        .maps
        .iter()
        .filter(|m| m.max_entries == 0)
        .map(|m| m.name.clone())
        .collect();
    for m in empty {
        let _ = obj.set_max_entries(&m, 64);
    }
}

/// [`as_loaders_do`], then only the XDP programs are kept (others need attach targets)
/// and iproute2's pinning of `struct bpf_elf_map` maps is ignored.
#[allow(dead_code)] // not every tool that includes this module uses it
pub fn xdp_only(obj: &mut Object) {
    as_loaders_do(obj);
    obj.programs.retain(|p| p.prog_type == prog_type::XDP);
    obj.elf_map_extra.clear();
}
