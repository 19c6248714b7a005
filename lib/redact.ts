/** Hides credentials in anything that may reach logs, events or health output. */
export function redact(text: string, secrets: ReadonlyArray<string | undefined> = []): string {
  let out = text.replace(/(rediss?:\/\/)([^@/\s]*)@/gi, (_m, scheme: string, auth: string) =>
    auth.includes(':') ? `${scheme}${auth.split(':')[0]}:***@` : `${scheme}***@`,
  );
  for (const secret of secrets) {
    if (secret) out = out.split(secret).join('***');
  }
  return out;
}
