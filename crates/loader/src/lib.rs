//! Loader: the bpf() syscall, program loading and BPF_PROG_TEST_RUN.
