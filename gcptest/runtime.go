package gcptest

import (
	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/fake"
)

// defaultRuntime is the runtime a Server uses without WithRuntime: the
// in-memory fake running each container's command and args as a process
// of this host, its mounts given by path substitution. Images are not
// pulled unless WithImageRegistry names their registry, so the command
// must exist on the host (for example sh).
func defaultRuntime() (gantry.Runtime, error) {
	return fake.New(fake.WithHostProcesses()), nil
}
