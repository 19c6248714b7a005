/** Hides credentials in anything that may reach logs, events or health output. */
export function redact(text: string, secrets: ReadonlyArray<string | undefined> = []): string {
  // Known secrets first: once the URL rule below has rewritten a URL, a password in it no longer matches.
  let out = text;
  for (const secret of secrets) {
    if (secret) out = out.split(secret).join('***');
  }
  // Userinfo runs to the last "@" before the path: a password may itself contain "@".
  return out.replace(/(rediss?:\/\/)([^/\s]*)@/gi, (_m, scheme: string, auth: string) =>
    auth.includes(':') ? `${scheme}${auth.split(':')[0]}:***@` : `${scheme}***@`,
  );
}
