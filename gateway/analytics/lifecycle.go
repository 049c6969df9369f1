package analytics

// Starting and stopping applications: compiling them into engines,
// positioning their inputs, wiring their outputs, and the statuses that
// go with it.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/streamgate/streamgate/gateway/awsapi"
	"github.com/streamgate/streamgate/streamstore"
)

func (s *Service) start(r *awsapi.Request) (any, error) {
	var in startRequest
	return s.withApp(r, &in, func(a *Application) (any, error) { return s.startApp(a, in) })
}

type startRequest struct {
	appRef
	InputConfigurations []struct {
		ID                                 string `json:"Id"`
		InputStartingPositionConfiguration StartingPosition
	}
}

// startApp is StartApplication, the service locked.
func (s *Service) startApp(a *Application, in startRequest) (any, error) {
	if a.Status != "READY" {
		return nil, awsapi.Errorf(awsapi.CodeResourceInUse, "Application %s is %s, not READY.", a.ApplicationName, a.Status)
	}
	if len(a.Inputs) == 0 {
		return nil, awsapi.Errorf("InvalidApplicationConfigurationException", "Application %s has no input.", a.ApplicationName)
	}
	positions := map[string]string{}
	for _, c := range in.InputConfigurations {
		found := false
		for _, x := range a.Inputs {
			found = found || x.InputID == c.ID
		}
		if !found {
			return nil, awsapi.Errorf(awsapi.CodeResourceNotFound, "Input %s is not found.", c.ID)
		}
		switch p := c.InputStartingPositionConfiguration.InputStartingPosition; p {
		case "NOW", "TRIM_HORIZON", "LAST_STOPPED_POINT":
			positions[c.ID] = p
		default:
			return nil, invalid("InputStartingPosition must be NOW, TRIM_HORIZON or LAST_STOPPED_POINT.")
		}
	}
	for _, x := range a.Inputs {
		if positions[x.InputID] == "" {
			return nil, invalid("InputConfigurations must give a starting position for input %s.", x.InputID)
		}
		x.InputStartingPositionConfiguration = &StartingPosition{InputStartingPosition: positions[x.InputID]}
	}
	if err := s.startLocked(a, positions); err != nil {
		return nil, err
	}
	a.Status = "STARTING" // RUNNING once the runner has read its inputs
	if err := s.save(a); err != nil {
		return nil, err
	}
	return map[string]any{}, nil
}

func (s *Service) stop(r *awsapi.Request) (any, error) {
	return s.withApp(r, &appRef{}, s.stopApp)
}

// stopApp is StopApplication, the service locked.
func (s *Service) stopApp(a *Application) (any, error) {
	if a.Status != "RUNNING" && a.Status != "STARTING" {
		return nil, awsapi.Errorf(awsapi.CodeResourceInUse, "Application %s is %s, not RUNNING.", a.ApplicationName, a.Status)
	}
	// STOPPING while the runner finishes its round, writes its outputs and
	// checkpoints; READY after.
	rn := s.runners[a.ApplicationName]
	delete(s.runners, a.ApplicationName)
	a.Status = "STOPPING"
	if err := s.save(a); err != nil {
		return nil, err
	}
	s.stopping.Add(1)
	go func() {
		defer s.stopping.Done()
		if rn != nil {
			rn.cancel()
			<-rn.done
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if cur := s.apps[a.ApplicationName]; cur != nil && cur.Status == "STOPPING" {
			cur.Status = "READY"
			if err := s.save(cur); err != nil {
				s.log.Warn("analytics application state not saved", "application", cur.ApplicationName, "err", err)
			}
		}
	}()
	return map[string]any{}, nil
}

// ended takes a runner that stopped by itself out of the running.
func (s *Service) ended(rn *runner) {
	<-rn.done
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runners[rn.app] != rn {
		return // stopped or replaced meanwhile
	}
	delete(s.runners, rn.app)
	if a := s.apps[rn.app]; a != nil {
		a.Status = "READY"
		if err := s.save(a); err != nil {
			s.log.Warn("analytics application state not saved", "application", a.ApplicationName, "err", err)
		}
	}
}

// refreshStatus turns STARTING into RUNNING once the runner has read its
// inputs (the runner never takes the service's lock).
func (s *Service) refreshStatus(a *Application) {
	if rn := s.runners[a.ApplicationName]; a.Status == "STARTING" && rn != nil && rn.hasStarted() {
		a.Status = "RUNNING"
		if err := s.save(a); err != nil {
			s.log.Warn("analytics application state not saved", "application", a.ApplicationName, "err", err)
		}
	}
}

// stopLocked stops an application's runner, which checkpoints on its way out.
func (s *Service) stopLocked(a *Application) {
	if rn := s.runners[a.ApplicationName]; rn != nil {
		rn.cancel()
		<-rn.done
		delete(s.runners, a.ApplicationName)
	}
}

// startLocked compiles the application and starts its runner; positions
// (by input id) say where each input starts, nil meaning where it stopped.
func (s *Service) startLocked(a *Application, positions map[string]string) error {
	tables, err := s.tables(a, true)
	if err != nil {
		return err
	}
	eng, err := compile(a.ApplicationCode, sourceDefs(a), func() int64 { return time.Now().UnixMilli() }, tables...)
	if err != nil {
		return codeInvalid(err)
	}
	rn := &runner{s: s, app: a.ApplicationName, arn: a.ARN, eng: eng, done: make(chan struct{}), started: make(chan struct{})}
	eng.markFn = rn.currentMark
	cp, hasCheckpoint := s.loadCheckpoint(a.ApplicationName)
	for _, in := range a.Inputs {
		stream, err := s.inputStream(in)
		if err != nil {
			return err
		}
		parser, _, _ := newRecordParser(in.InputSchema)
		ir := &inputRun{in: in, stream: stream, parser: parser}
		if p := in.InputProcessingConfiguration; p != nil {
			ir.preprocessor, _ = functionURL(p.InputLambdaProcessor)
		}
		for _, name := range inAppNames(in) {
			st, _ := eng.stream(name)
			ir.targets = append(ir.targets, st)
		}
		rn.inputs = append(rn.inputs, ir)
		info, err := s.store.Stream(stream)
		if err != nil {
			return awsapi.Errorf(awsapi.CodeResourceNotFound, "The input stream %s does not exist.", stream)
		}
		start := "LAST_STOPPED_POINT"
		if positions != nil {
			start = positions[in.InputID]
		}
		if start == "LAST_STOPPED_POINT" && !hasCheckpoint {
			start = "NOW" // never stopped: as AWS, start at the tip
		}
		for _, sh := range info.Shards {
			next, resumed := uint64(0), false
			if start == "LAST_STOPPED_POINT" {
				next, resumed = cp.Mark.Next[readerKey(ir, sh.ID)]
			}
			if !resumed {
				from := start
				if from == "LAST_STOPPED_POINT" {
					from = "TRIM_HORIZON" // a shard a reshard made since the checkpoint
				}
				if next, err = s.startPosition(ir, sh.ID, from); err != nil {
					return err
				}
			}
			rn.readers = append(rn.readers, &shardReader{input: ir, shard: sh.ID, next: next})
		}
		if start == "LAST_STOPPED_POINT" {
			rn.rowtime = cp.Mark.Rowtime
		}
	}
	for _, o := range a.Outputs {
		st, ok := eng.stream(o.Name)
		if !ok {
			return codeInvalid(fmt.Errorf("output %s names in-application stream %q, which the code does not create", o.OutputID, o.Name))
		}
		or := &outputRun{out: o, csv: o.DestinationSchema.RecordFormatType == "CSV", prefix: a.ApplicationName + "/" + o.OutputID + "/"}
		switch {
		case o.KinesisStreamsOutput != nil:
			name, ok := arnName(o.KinesisStreamsOutput.ResourceARN, "stream")
			if !ok {
				return invalid("Output %s: %s is not a Kinesis stream ARN.", o.OutputID, o.KinesisStreamsOutput.ResourceARN)
			}
			or.stream = name
		case o.KinesisFirehoseOutput != nil:
			name, ok := arnName(o.KinesisFirehoseOutput.ResourceARN, "deliverystream")
			if !ok || s.firehoseStream == nil {
				return invalid("Output %s: %s is not a Firehose delivery stream ARN.", o.OutputID, o.KinesisFirehoseOutput.ResourceARN)
			}
			or.stream, or.deliveryStream = s.firehoseStream(name), name
		case o.LambdaOutput != nil:
			or.url, _ = functionURL(o.LambdaOutput)
		}
		if _, err := s.store.Stream(or.stream); err != nil && or.url == "" {
			dest := "stream " + or.stream
			if or.deliveryStream != "" {
				// Rows go in by Direct PUT: a delivery stream that reads a
				// Kinesis stream has no records of its own.
				dest = "Direct PUT delivery stream " + or.deliveryStream
			}
			return awsapi.Errorf(awsapi.CodeResourceNotFound, "Output %s: the %s does not exist.", o.OutputID, dest)
		}
		if hasCheckpoint {
			// Row numbers go on from the checkpoint; rows replayed from its
			// mark that were written already are skipped.
			or.written = max(cp.Written[o.OutputID], s.writtenSince(or.stream, or.prefix, cp.At))
			or.sent = or.written
			if positions == nil || positions[a.Inputs[0].InputID] == "LAST_STOPPED_POINT" {
				or.sent = cp.Mark.Sent[o.OutputID]
			}
		}
		st.readers = append(st.readers, or.collect(st))
		rn.outputs = append(rn.outputs, or)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rn.cancel = cancel
	s.runners[a.ApplicationName] = rn
	if eng.hasSliding {
		rn.marks = []*mark{rn.currentMark()} // where this run starts
	}
	go rn.run(ctx)
	return nil
}

// collect is an output's reader of its in-application stream.
func (o *outputRun) collect(st *inAppStream) func(*row) {
	var buf []byte
	return func(r *row) {
		o.sent++
		if o.sent <= o.written {
			return // written before a restart; replayed to rebuild a window
		}
		buf = appendRow(buf[:0], st, r, o.csv)
		o.pending = append(o.pending, streamstore.Entry{PartitionKey: o.prefix + strconv.FormatInt(o.sent, 10), Data: append([]byte(nil), buf...)})
	}
}

// inputStream is the store stream an input reads.
func (s *Service) inputStream(in *Input) (string, error) {
	if in.KinesisStreamsInput != nil {
		name, ok := arnName(in.KinesisStreamsInput.ResourceARN, "stream")
		if !ok {
			return "", invalid("%s is not a Kinesis stream ARN.", in.KinesisStreamsInput.ResourceARN)
		}
		return name, nil
	}
	name, ok := arnName(in.KinesisFirehoseInput.ResourceARN, "deliverystream")
	if !ok || s.firehoseSource == nil {
		return "", invalid("%s is not a Firehose delivery stream ARN.", in.KinesisFirehoseInput.ResourceARN)
	}
	stream, err := s.firehoseSource(name)
	if err != nil {
		return "", awsapi.Errorf(awsapi.CodeResourceNotFound, "%v", err)
	}
	return stream, nil
}

// startPosition is where a shard's reading starts: NOW or TRIM_HORIZON.
func (s *Service) startPosition(ir *inputRun, shard, start string) (uint64, error) {
	pos := streamstore.Position{Type: streamstore.Latest}
	if start == "TRIM_HORIZON" {
		pos.Type = streamstore.TrimHorizon
	}
	n, err := s.store.Seek(ir.stream, shard, pos)
	if errors.Is(err, streamstore.ErrNotFound) {
		return 0, awsapi.Errorf(awsapi.CodeResourceNotFound, "The input stream %s does not exist.", ir.stream)
	}
	return n, err
}
