/* struct bpf_map_def for the rejected samples: they load without BTF through
 * corpus/tools/kernel_record.py, which only understands legacy map sections. */
#ifndef BPFKIT_LEGACY_MAPS_H
#define BPFKIT_LEGACY_MAPS_H
struct bpf_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
};
#endif
