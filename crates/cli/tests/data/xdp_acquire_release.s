# Load-acquire and store-release (Linux 6.15), which clang-19 cannot emit (LLVM 20 added
# them under -mcpu=v4): the instructions are bytes here, their LLVM 20 text beside them.
# Built by build.sh with clang-19's assembler.
	.section	xdp,"ax",@progbits
	.globl	xdp_acquire_release
	.type	xdp_acquire_release,@function
xdp_acquire_release:
	r1 = 42
	.byte 0xdb, 0x1a, 0xf8, 0xff, 0x10, 0x01, 0x00, 0x00 # store_release((u64 *)(r10 - 0x8), r1)
	.byte 0xdb, 0xa2, 0xf8, 0xff, 0x00, 0x01, 0x00, 0x00 # r2 = load_acquire((u64 *)(r10 - 0x8))
	.byte 0xc3, 0xa3, 0xf8, 0xff, 0x00, 0x01, 0x00, 0x00 # w3 = load_acquire((u32 *)(r10 - 0x8))
	r0 = 1
	if r2 != 42 goto LBB0_2
	if r3 != 42 goto LBB0_2
	r0 = 2
LBB0_2:
	exit
.Lfunc_end0:
	.size	xdp_acquire_release, .Lfunc_end0-xdp_acquire_release

	.globl	xdp_acquire_release8
	.type	xdp_acquire_release8,@function
xdp_acquire_release8:
	r1 = 4660
	.byte 0xcb, 0x1a, 0xf8, 0xff, 0x10, 0x01, 0x00, 0x00 # store_release((u16 *)(r10 - 0x8), w1)
	.byte 0xd3, 0xa2, 0xf8, 0xff, 0x00, 0x01, 0x00, 0x00 # w2 = load_acquire((u8 *)(r10 - 0x8))
	r0 = 1
	if r2 != 52 goto LBB1_2
	r0 = 2
LBB1_2:
	exit
.Lfunc_end1:
	.size	xdp_acquire_release8, .Lfunc_end1-xdp_acquire_release8

	.section	license,"aw",@progbits
	.globl	_license
_license:
	.asciz	"GPL"
	.size	_license, 4
