#!/usr/bin/env python3
"""Checks the sizes issue 14 asks for: no file in services/ or tools/ over 500 lines, no C++
function in services/ over 120 lines. Prints what is over and exits 1, else exits 0.

Usage: python3 scripts/check_sizes.py [--file-lines 500] [--function-lines 120]

Functions are found by matching braces in the text with comments and strings blanked: a brace
whose head ends in a parameter list (and is not if/for/while/switch/catch) at namespace or class
scope opens a function; a lambda counts as part of its function.
"""
import argparse, os, re, sys

def strip(text):
    out=[];i=0;n=len(text)
    while i<n:
        c=text[i]
        if text.startswith('//',i):
            j=text.find('\n',i); j=n if j<0 else j; out.append(' '*(j-i)); i=j
        elif text.startswith('/*',i):
            j=text.find('*/',i+2); j=n if j<0 else j+2
            out.append(''.join(ch if ch=='\n' else ' ' for ch in text[i:j])); i=j
        elif text.startswith('R"',i):
            m=re.match(r'R"([^(]*)\(',text[i:])
            if m:
                end=')'+m.group(1)+'"'; j=text.find(end,i); j=n if j<0 else j+len(end)
                out.append(''.join(ch if ch=='\n' else ' ' for ch in text[i:j])); i=j
            else: out.append(c); i+=1
        elif c in '"\'':
            j=i+1
            while j<n and text[j]!=c:
                j+=2 if text[j]=='\\' else 1
            out.append(c+' '*(j-i-1)+c if j<n else ''); i=j+1
        else: out.append(c); i+=1
    return ''.join(out)

def functions(path):
    text=strip(open(path,errors='replace').read())
    stack=[]  # (kind, start_line, name)
    last=0; line=1; res=[]
    for i,c in enumerate(text):
        if c=='\n': line+=1
        elif c=='{':
            head=text[last:i]
            h=' '.join(head.split())
            kind='block'
            if re.search(r'\b(namespace|class|struct|enum|union)\b[^()]*$',h) or h.endswith('extern "C"'):
                kind='scope'
            elif re.search(r'\)\s*(const|override|final|noexcept|mutable|->\s*[\w:<>,\s\*&]+|\s)*$',h) and not re.search(r'\b(if|for|while|switch|catch)\s*\(.*\)\s*$',h) and not h.endswith(']'):
                # a function if we are at scope level
                if all(k=='scope' for k,_,_ in stack): kind='function'
            name=h[-80:]
            stack.append((kind,line,name)); last=i+1
        elif c=='}':
            if stack:
                kind,start,name=stack.pop()
                if kind=='function': res.append((line-start+1,start,name))
            last=i+1
        elif c==';':
            last=i+1
    return res

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--file-lines', type=int, default=500)
    parser.add_argument('--function-lines', type=int, default=120)
    args = parser.parse_args()
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
    over = []
    for root in ('services', 'tools'):
        for d, _, files in os.walk(root):
            for f in sorted(files):
                path = os.path.join(d, f)
                with open(path, errors='replace') as text:
                    lines = sum(1 for _ in text)
                if lines > args.file_lines:
                    over.append(f'{path}: {lines} lines (file)')
                if root == 'services' and f.endswith(('.cc', '.h')):
                    for n, start, name in functions(path):
                        if n > args.function_lines:
                            over.append(f'{path}:{start}: {n} lines (function ...{name[-50:]})')
    for line in over:
        print(line)
    print(f'{len(over)} over: files in services/ and tools/ at most {args.file_lines} lines, '
          f'functions in services/ at most {args.function_lines}')
    return 1 if over else 0


if __name__ == '__main__':
    sys.exit(main())
