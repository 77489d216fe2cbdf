mod dovecot;
fn main() {}
