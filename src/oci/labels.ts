// Labels, the key/value pairs every object carries. Their rules (empty values dropped, field-path
// updates) are the content store's own, since the bare store applies them too; the rest of berth
// takes them from here.
export type { Labels } from '../../store/types.js';
export { applyLabelPaths, withoutEmpty } from '../../store/labels.js';
