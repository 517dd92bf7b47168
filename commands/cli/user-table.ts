// The shape of the list commands' output: a JSON array of objects, or the table (header first).
export function renderUserList(lines: readonly string[], json: boolean, emptyMessage: string): string {
  if (json) return lines.length === 0 ? '[]' : `[\n${lines.join(',\n')}\n]`;
  return lines.length === 0 ? emptyMessage : lines.join('\n');
}
