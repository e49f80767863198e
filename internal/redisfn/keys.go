package redisfn

import "strings"

// The key and channel layout (docs/redis.md). Every key and channel of a
// project carries the hash tag {<project>}, so on Redis Cluster all of a
// project lives on one slot and one function call touches one slot.

// EpochKey is the project's epoch key, sg:{<project>}:epoch: the key the
// publish and history functions take.
func EpochKey(project string) string { return "sg:{" + project + "}:epoch" }

// StreamKey is the history stream of a collection (or "*", the project
// stream): sg:{<project>}:s:<collection>.
func StreamKey(project, collection string) string {
	return "sg:{" + project + "}:s:" + collection
}

// ChannelName is the live (sharded pub/sub) channel of a collection or of
// the project stream: sg:{<project>}:c:<collection>.
func ChannelName(project, collection string) string {
	return "sg:{" + project + "}:c:" + collection
}

// ProbeChannel is a gateway node's private probe channel on the slot of
// tag: sg:{<tag>}:probe:<node>.
func ProbeChannel(tag, node string) string { return "sg:{" + tag + "}:probe:" + node }

// StreamOfChannel parses a ChannelName back into its project and
// collection.
func StreamOfChannel(ch string) (project, collection string, ok bool) {
	rest, ok := strings.CutPrefix(ch, "sg:{")
	if !ok {
		return "", "", false
	}
	p, coll, ok := strings.Cut(rest, "}:c:")
	if !ok || p == "" || coll == "" {
		return "", "", false
	}
	return p, coll, true
}

// TagLen is the length of a stream tag: 48 bits in hex.
const TagLen = 12

// StreamTag is the tag offsets of the stream (project, collection) carry:
// 48 bits of an FNV-1a hash of "project/collection", in hex. Two streams
// share a tag with probability 2^-48.
func StreamTag(project, collection string) string {
	const offset64, prime64 = 14695981039346656037, 1099511628211
	v := uint64(offset64)
	for _, part := range [3]string{project, "/", collection} {
		for i := 0; i < len(part); i++ {
			v ^= uint64(part[i])
			v *= prime64
		}
	}
	v >>= 16
	const digits = "0123456789abcdef"
	var b [TagLen]byte
	for i := TagLen - 1; i >= 0; i-- {
		b[i] = digits[v&15]
		v >>= 4
	}
	return string(b[:])
}

// TagOffset tags an offset the function returned ("<epoch>:<ms>-<seq>", an
// id of the collection stream) with its stream: "<epoch>t<tag>:<ms>-<seq>".
// Anything else (an already tagged offset, "" for a skipped event) is
// returned as it is.
func TagOffset(off, project, collection string) string {
	epoch, id, ok := strings.Cut(off, ":")
	if !ok || epoch == "" || strings.Contains(epoch, "t") || !validID(id) {
		return off
	}
	return epoch + "t" + StreamTag(project, collection) + ":" + id
}

// validID reports whether id is a stream id "<ms>-<seq>".
func validID(id string) bool {
	ms, seq, ok := strings.Cut(id, "-")
	return ok && digits(ms) && digits(seq)
}

func digits(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
