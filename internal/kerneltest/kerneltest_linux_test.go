package kerneltest

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { Main(m, "kerneltest tests") }

// TestThreadCheck proves that the check sees a thread left in another
// network namespace.
func TestThreadCheck(t *testing.T) {
	Root(t)
	homeFD, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(homeFD)
	entered, release, left := make(chan error), make(chan struct{}), make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		entered <- unix.Unshare(unix.CLONE_NEWNET)
		<-release
		// Come home all the same: were this the main thread, it could not end.
		left <- unix.Setns(homeFD, unix.CLONE_NEWNET)
	}()
	if err := <-entered; err != nil {
		t.Fatal(err)
	}
	if len(StrayThreads()) == 0 {
		t.Error("a thread in another namespace went unnoticed")
	}
	close(release)
	if err := <-left; err != nil {
		t.Fatal(err)
	}
}
