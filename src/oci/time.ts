// Times as containerd writes them: RFC 3339 with nanoseconds. The content store writes its ingest
// files in this format, so the functions are the store's; the rest of berth takes them from here.
export { formatTimestamp, parseTimestamp } from '../../store/timestamp.js';
