package gcptest

import (
	"cmp"
	"context"
	"strings"

	"cloud.google.com/go/run/apiv2/runpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// tasksService is google.cloud.run.v2.Tasks.
type tasksService struct {
	runpb.UnimplementedTasksServer
	s *Server
}

// GetTask returns a task.
func (ts *tasksService) GetTask(_ context.Context, req *runpb.GetTaskRequest) (*runpb.Task, error) {
	name, err := parseTaskName("name", req.GetName())
	if err != nil {
		return nil, err
	}
	s := ts.s
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	if t := s.store.tasks[req.GetName()]; t != nil {
		return clone(t), nil
	}
	return nil, status.Errorf(codes.NotFound, "task %s not found", name.task)
}

// ListTasks lists the tasks of an execution in index order, or in no
// particular order with unordered lists. The job, the execution or both
// may be "-" to list across them.
func (ts *tasksService) ListTasks(_ context.Context, req *runpb.ListTasksRequest) (*runpb.ListTasksResponse, error) {
	parent, err := parseExecutionName("parent", req.GetParent(), true)
	if err != nil {
		return nil, err
	}
	s := ts.s
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	if parent.job != wildcard && parent.execution != wildcard && s.store.executions[parent.String()] == nil {
		return nil, status.Errorf(codes.NotFound, "execution %s not found", parent)
	}
	prefix := parent.location.String() + "/jobs/"
	var list []*runpb.Task
	for n, t := range s.store.tasks {
		if !strings.HasPrefix(n, prefix) ||
			(parent.job != wildcard && t.Job != parent.job) ||
			(parent.execution != wildcard && t.Execution != parent.execution) {
			continue
		}
		list = append(list, t)
	}
	byExecutionAndIndex := func(a, b *runpb.Task) int {
		if c := b.CreateTime.AsTime().Compare(a.CreateTime.AsTime()); c != 0 {
			return c
		}
		if c := strings.Compare(a.Execution, b.Execution); c != 0 {
			return c
		}
		return cmp.Compare(a.Index, b.Index)
	}
	page, next, err := listPage(s, list, (*runpb.Task).GetName, byExecutionAndIndex, req.GetPageSize(), req.GetPageToken(), listKey(req.GetParent(), req.GetShowDeleted()))
	if err != nil {
		return nil, err
	}
	resp := &runpb.ListTasksResponse{NextPageToken: next}
	for _, t := range page {
		resp.Tasks = append(resp.Tasks, clone(t))
	}
	return resp, nil
}
