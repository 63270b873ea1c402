//! `fork` waits for the allocator's leaf lock (the thread caches'), so that the child
//! never starts with it held by a thread it does not have.
//!
//! One test in its own binary: it forks.

use std::time::Duration;

fn fork_while_held(lock: &'static goalloc::testing::sync::Mutex, name: &str) {
    unsafe { goalloc::free(goalloc::malloc(8)) }; // goalloc's fork handlers are installed
    let (tx, rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        lock.lock();
        tx.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        lock.unlock();
    });
    rx.recv().unwrap(); // the other thread holds the lock now
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // The child: with the lock left held it would wait forever; the alarm ends it.
        unsafe {
            libc::alarm(5);
            lock.lock();
            lock.unlock();
            libc::_exit(0);
        }
    }
    let mut status = 0;
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    holder.join().unwrap();
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child could not take the {name} lock (status {status:#x})"
    );
}

#[test]
fn fork_waits_for_the_leaf_lock() {
    fork_while_held(&goalloc::testing::mcache::CACHES, "thread-cache");
}
