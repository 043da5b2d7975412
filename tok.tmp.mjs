import { encode, decode } from 'gpt-tokenizer/encoding/o200k_base'
for (const s of process.argv.slice(2)) { const t = encode(s); console.log(JSON.stringify(s), t.length, t.map(x=>JSON.stringify(decode([x]))).join('|')) }
