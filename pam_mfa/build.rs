//! Link options for the PAM module; each saves work on every login, because
//! sshd and sudo load the module afresh in every process that authenticates.

fn main() {
    // Unwinding (a panic caught at the PAM boundary) needs the GCC unwinder.
    // Rust links the shared libgcc_s by default, which sshd and sudo do not
    // otherwise load: every login then loaded and relocated a second library
    // (about 65 us per pam_start on a VM). Linked statically here it is a
    // few kilobytes of this module and libgcc_s is no longer needed.
    println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
    // Pack the ~2 000 relative relocations (vtables, string tables) into
    // DT_RELR (glibc 2.36, Debian 12): 2 KB instead of 48 KB to read at
    // every load.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,pack-relative-relocs");
}
