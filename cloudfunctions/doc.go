// Package cloudfunctions runs gantry containers on Google Cloud Functions
// (2nd gen), with Docker's semantics as far as a function allows, and
// says exactly how far in Capabilities.
//
// Cloud Functions deploys source, not images, so a container here is one
// function built from gantry's runner: a small Go function, embedded in
// this package, that runs the container's command once per start. Spec.Image
// names the runtime to build it on (a Go runtime ID such as "go125",
// checked against the runtimes the API lists); Entrypoint and Cmd are
// what each start runs. Create uploads the runner (GenerateUploadUrl, then
// the signed URL) and creates the function with max instances 1 and
// request concurrency above 1, so that every request reaches the one
// instance that runs the command. Start invokes the function's URL with
// the command, its environment, working directory and timeout; the runner
// answers when the command ends, with the exact exit code in a header.
// Wait holds such a request; Stop and Kill ask the runner to signal the
// command (the stop signal, the timeout, then SIGKILL), so their
// semantics are Docker's. Logs read Cloud Logging, where the function's
// Cloud Run service writes the command's stdout and stderr. Remove
// deletes the function and waits until it is gone.
//
// The container's ID, name, spec, labels and creation time live on the
// function (labels, and the record in a build-time environment variable
// that never reaches the instance), so a new Runtime sees the same
// containers; a run in flight is recovered by asking the runner for it.
// The run's state lives in the function's one instance: when Cloud Run
// retires that instance, the run reads as killed with an error text, and
// Config.MinInstances keeps one warm.
//
// A program that runs one container:
//
//	ctx := context.Background()
//	rt, err := cloudfunctions.New(ctx, cloudfunctions.Config{Project: "my-project", Region: "us-central1"})
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer rt.Close()
//	c, err := rt.Create(ctx, gantry.Spec{
//		Image: "go125",
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
// With no client options New uses Application Default Credentials against
// Google Cloud and invokes functions with an ID token for their URL;
// gcptest.Server.ClientOptions point it at the emulator, whose function
// URLs take a plain Config.HTTPClient.
package cloudfunctions
