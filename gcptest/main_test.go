package gcptest_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// helperEnv, set in a container's environment, makes the test binary act
// as a helper process instead of running tests (see TestMain).
const helperEnv = "GCPTEST_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helper(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// helper is a sidecar a test runs as a container: "sidecar PORT DIR
// DELAY" waits DELAY, writes DIR/ready, listens on PORT (so that a TCP
// startup probe passes) and exits 0 once DIR/done exists, or 3 after 30
// seconds; it exits 1 when it cannot listen.
func helper(args []string) int {
	if len(args) != 4 || args[0] != "sidecar" {
		fmt.Fprintln(os.Stderr, "usage: sidecar PORT DIR DELAY")
		return 2
	}
	port, dir := args[1], args[2]
	delay, err := time.ParseDuration(args[3])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	time.Sleep(delay)
	if err := os.WriteFile(filepath.Join(dir, "ready"), []byte("ready\n"), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	l, err := net.Listen("tcp", ":"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	fmt.Println("listening on " + strconv.Quote(port))
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(dir, "done")); err == nil {
			return 0
		}
	}
	return 3
}
