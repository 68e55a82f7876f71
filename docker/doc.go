// Package docker runs gantry containers on a Docker Engine, through moby's
// own client. It is the reference every other backend is held to: gantry's
// semantics are Docker's (with an init, as docker run --init), and the
// conformance suite in runtimetest is proven on a real engine through this
// package. It is also a local backend: the same program that runs its
// containers on Cloud Run through cloudrun runs them on a laptop's Docker
// through this package.
//
// Every operation is the daemon's own (ContainerCreate, ContainerStop,
// ContainerWait...), so states, exit codes, stop timeouts, wait conditions,
// logs and exec behave exactly as Docker's do. The container's spec, as it
// was given, is kept in a label under the gantryhq.github.io/ prefix, with
// a managed-by and a session label beside it; the user's labels are Docker
// labels as they are. A Runtime sees and acts on gantry's containers only:
// another container of the daemon is not found.
//
// A program that runs one container:
//
//	ctx := context.Background()
//	rt, err := docker.New(ctx)
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer rt.Close()
//	c, err := rt.Create(ctx, gantry.Spec{
//		Image: "busybox",
//		Cmd:   []string{"sh", "-c", "echo hello; exit 3"},
//	})
//	if err != nil {
//		log.Fatal(err)
//	}
//	if err := rt.Start(ctx, c.ID); err != nil {
//		log.Fatal(err)
//	}
//	st, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning)
//	if err != nil {
//		log.Fatal(err)
//	}
//	fmt.Println("exit code", st.ExitCode) // exit code 3
//	rt.Remove(ctx, c.ID, gantry.RemoveOptions{})
//
// New finds the daemon as the docker CLI does (DOCKER_HOST and the TLS
// variables, else the local socket) and negotiates the API version: any
// daemon from API 1.40 (Docker 19.03) up works. Capabilities says what
// Docker cannot do of gantry's Spec (GPUs, secrets, sidecars, HTTP and TCP
// probes, Cloud Storage and NFS mounts), which Create refuses with
// gantry.ErrNotSupported.
//
// Spec.Ports are published on 127.0.0.1 at ports the daemon picks (as
// docker run -p 127.0.0.1::PORT), and DialPort and gantry.ForwardPort
// reach a container's port through them; on the host's network
// (WithNetwork("host")) they dial the port itself. A daemon started with
// --bridge=none publishes nothing on its default network: give WithNetwork
// a user-defined network (docker network create) instead.
package docker
