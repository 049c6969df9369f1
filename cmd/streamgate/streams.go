package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

func streamsCmd(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: streamgate streams list|create|describe|delete [flags]")
	}
	var c clientFlags
	fs := flag.NewFlagSet("streams "+args[0], flag.ExitOnError)
	c.register(fs)
	shards := fs.Int("shards", 1, "shard count (create)")
	onDemand := fs.Bool("on-demand", false, "create in ON_DEMAND mode")
	fs.Parse(args[1:])
	name := fs.Arg(0)
	needName := func() error {
		if name == "" {
			return fmt.Errorf("streams %s: name the stream", args[0])
		}
		return nil
	}
	k := c.kinesis()
	switch args[0] {
	case "list":
		p := kinesis.NewListStreamsPaginator(k, &kinesis.ListStreamsInput{})
		for p.HasMorePages() {
			out, err := p.NextPage(bg)
			if err != nil {
				return err
			}
			for _, n := range out.StreamNames {
				fmt.Println(n)
			}
		}
	case "create":
		if err := needName(); err != nil {
			return err
		}
		in := &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(int32(*shards))}
		if *onDemand {
			in.ShardCount = nil
			in.StreamModeDetails = &types.StreamModeDetails{StreamMode: types.StreamModeOnDemand}
		}
		if _, err := k.CreateStream(bg, in); err != nil {
			return err
		}
		fmt.Println("created", name)
	case "describe":
		if err := needName(); err != nil {
			return err
		}
		sum, err := k.DescribeStreamSummary(bg, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err != nil {
			return err
		}
		var shardList []types.Shard
		in := &kinesis.ListShardsInput{StreamName: aws.String(name)}
		for {
			out, err := k.ListShards(bg, in)
			if err != nil {
				return err
			}
			shardList = append(shardList, out.Shards...)
			if out.NextToken == nil {
				break
			}
			in = &kinesis.ListShardsInput{NextToken: out.NextToken}
		}
		return printJSON(map[string]any{"Summary": sum.StreamDescriptionSummary, "Shards": shardList})
	case "delete":
		if err := needName(); err != nil {
			return err
		}
		if _, err := k.DeleteStream(bg, &kinesis.DeleteStreamInput{StreamName: aws.String(name), EnforceConsumerDeletion: aws.Bool(true)}); err != nil {
			return err
		}
		fmt.Println("deleted", name)
	default:
		return fmt.Errorf("streams: unknown subcommand %q (list, create, describe, delete)", args[0])
	}
	return nil
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func putCmd(args []string) error {
	var c clientFlags
	fs := flag.NewFlagSet("put", flag.ExitOnError)
	c.register(fs)
	key := fs.String("partition-key", "", "partition key (required)")
	lines := fs.Bool("lines", false, "with -: put each input line as its own record")
	stream, rest := splitFirst(args)
	fs.Parse(rest)
	if stream == "" || *key == "" {
		return errors.New("usage: streamgate put STREAM --partition-key K [DATA|-]")
	}
	k := c.kinesis()
	put := func(data []byte) error {
		out, err := k.PutRecord(bg, &kinesis.PutRecordInput{StreamName: aws.String(stream), PartitionKey: aws.String(*key), Data: data})
		if err != nil {
			return err
		}
		fmt.Printf("%s %s\n", aws.ToString(out.ShardId), aws.ToString(out.SequenceNumber))
		return nil
	}
	switch data := fs.Arg(0); {
	case data == "-" && *lines:
		sc := bufio.NewScanner(os.Stdin)
		sc.Buffer(make([]byte, 1<<20), 10<<20)
		for sc.Scan() {
			if err := put(append([]byte(nil), sc.Bytes()...)); err != nil {
				return err
			}
		}
		return sc.Err()
	case data == "-":
		b, err := io.ReadAll(io.LimitReader(os.Stdin, 10<<20+1))
		if err != nil {
			return err
		}
		return put(b)
	default:
		return put([]byte(data))
	}
}

// splitFirst takes a leading positional argument so flags may follow it.
func splitFirst(args []string) (string, []string) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return args[0], args[1:]
	}
	return "", args
}

// tailRecord is one line of `streamgate tail` output.
type tailRecord struct {
	Shard          string    `json:"shard"`
	SequenceNumber string    `json:"sequenceNumber"`
	PartitionKey   string    `json:"partitionKey"`
	Arrival        time.Time `json:"arrival"`
	Data           string    `json:"data"`
	DataBase64     []byte    `json:"dataBase64,omitempty"`
}

func tailCmd(args []string) error {
	var c clientFlags
	fs := flag.NewFlagSet("tail", flag.ExitOnError)
	c.register(fs)
	from := fs.String("from", "latest", "trim-horizon, latest, or an RFC 3339 time")
	stream, rest := splitFirst(args)
	fs.Parse(rest)
	if stream == "" {
		return errors.New("usage: streamgate tail STREAM [--from trim-horizon|latest|<time>]")
	}
	in := kinesis.GetShardIteratorInput{StreamName: aws.String(stream)}
	switch *from {
	case "trim-horizon":
		in.ShardIteratorType = types.ShardIteratorTypeTrimHorizon
	case "latest":
		in.ShardIteratorType = types.ShardIteratorTypeLatest
	default:
		t, err := time.Parse(time.RFC3339Nano, *from)
		if err != nil {
			return fmt.Errorf("--from %q: want trim-horizon, latest or an RFC 3339 time", *from)
		}
		in.ShardIteratorType, in.Timestamp = types.ShardIteratorTypeAtTimestamp, &t
	}
	k := c.kinesis()
	ctx, stop := signal.NotifyContext(bg, os.Interrupt)
	defer stop()
	out := json.NewEncoder(os.Stdout)
	// Follow every shard, and children as parents end.
	shards, err := k.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		return err
	}
	type cursor struct{ shard, it string }
	var cursors []cursor
	seen := map[string]bool{}
	for _, s := range shards.Shards {
		in := in
		in.ShardId = s.ShardId
		it, err := k.GetShardIterator(ctx, &in)
		if err != nil {
			return err
		}
		cursors = append(cursors, cursor{aws.ToString(s.ShardId), aws.ToString(it.ShardIterator)})
		seen[aws.ToString(s.ShardId)] = true
	}
	for ctx.Err() == nil && len(cursors) > 0 {
		idle := true
		for i := 0; i < len(cursors); i++ {
			cur := &cursors[i]
			res, err := k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String(cur.it)})
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			for _, r := range res.Records {
				idle = false
				line := tailRecord{Shard: cur.shard, SequenceNumber: aws.ToString(r.SequenceNumber), PartitionKey: aws.ToString(r.PartitionKey), Arrival: aws.ToTime(r.ApproximateArrivalTimestamp)}
				if json.Valid(r.Data) || isText(r.Data) {
					line.Data = string(r.Data)
				} else {
					line.DataBase64 = r.Data
				}
				out.Encode(line)
			}
			if res.NextShardIterator == nil {
				for _, child := range res.ChildShards {
					id := aws.ToString(child.ShardId)
					if seen[id] {
						continue
					}
					seen[id] = true
					it, err := k.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: child.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
					if err != nil {
						return err
					}
					cursors = append(cursors, cursor{id, aws.ToString(it.ShardIterator)})
				}
				cursors = append(cursors[:i], cursors[i+1:]...)
				i--
				continue
			}
			cur.it = aws.ToString(res.NextShardIterator)
		}
		if idle {
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return nil
}

func isText(b []byte) bool {
	for _, c := range string(b) {
		if c == '\uFFFD' || (c < 0x20 && c != '\n' && c != '\r' && c != '\t') {
			return false
		}
	}
	return true
}
