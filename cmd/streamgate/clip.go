package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	amtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"
)

// clipCmd saves an MP4 of a video stream's time range with GetClip.
func clipCmd(args []string) error {
	var c clientFlags
	fs := flag.NewFlagSet("clip", flag.ExitOnError)
	c.register(fs)
	from := fs.String("from", "", "start, RFC 3339 (e.g. 2026-11-26T12:00:00Z) or a duration ago (e.g. 10m)")
	to := fs.String("to", "", "end, RFC 3339 or a duration ago (default: now)")
	outPath := fs.String("o", "", "output file (default: STREAM.mp4; - for standard output)")
	producer := fs.Bool("producer-time", false, "select by producer timestamps (default: server timestamps)")
	stream, rest := splitFirst(args)
	fs.Parse(rest)
	if stream == "" || *from == "" {
		return errors.New("usage: streamgate clip STREAM --from T [--to T] [-o out.mp4]")
	}
	now := time.Now()
	start, err := parseWhen(*from, now)
	if err != nil {
		return err
	}
	end := now
	if *to != "" {
		if end, err = parseWhen(*to, now); err != nil {
			return err
		}
	}
	kind := amtypes.ClipFragmentSelectorTypeServerTimestamp
	if *producer {
		kind = amtypes.ClipFragmentSelectorTypeProducerTimestamp
	}
	out, err := c.archivedMedia().GetClip(bg, &kinesisvideoarchivedmedia.GetClipInput{StreamName: aws.String(stream),
		ClipFragmentSelector: &amtypes.ClipFragmentSelector{FragmentSelectorType: kind,
			TimestampRange: &amtypes.ClipTimestampRange{StartTimestamp: aws.Time(start), EndTimestamp: aws.Time(end)}}})
	if err != nil {
		return err
	}
	defer out.Payload.Close()
	path := *outPath
	if path == "" {
		path = stream + ".mp4"
	}
	var w io.Writer = os.Stdout
	if path != "-" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	n, err := io.Copy(w, out.Payload)
	if err != nil {
		return err
	}
	if path != "-" {
		fmt.Fprintf(os.Stderr, "wrote %s (%d bytes)\n", path, n)
	}
	return nil
}

// parseWhen reads an RFC 3339 time or a duration before now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("time %q: want RFC 3339 or a duration ago such as 10m", s)
}
