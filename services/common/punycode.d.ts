/** The npm package punycode (RFC 3492), by its file path: the bare name `punycode` is Node's deprecated built-in. */
declare module 'punycode/punycode.js' {
  const punycode: { encode(input: string): string };
  export default punycode;
}
