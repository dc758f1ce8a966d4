"""Real programs for every language: hello world, factorial of stdin, string reversal."""

from __future__ import annotations

HELLO = {
    "python": 'print("Hello, World!")',
    "javascript": 'console.log("Hello, World!");',
    "java": 'public class Main { public static void main(String[] a) { System.out.println("Hello, World!"); } }',
    "c": '#include <stdio.h>\nint main(void) { puts("Hello, World!"); return 0; }',
    "cpp": '#include <iostream>\nint main() { std::cout << "Hello, World!" << std::endl; }',
    "go": 'package main\nimport "fmt"\nfunc main() { fmt.Println("Hello, World!") }',
    "rust": 'fn main() { println!("Hello, World!"); }',
    "ruby": 'puts "Hello, World!"',
    "php": '<?php echo "Hello, World!\\n";',
    "bash": 'echo "Hello, World!"',
}

# Reads n from stdin and prints n! (n <= 20 fits in 64 bits).
FACTORIAL = {
    "python": "import math\nprint(math.factorial(int(input())))",
    "javascript": (
        "const n = BigInt(require('fs').readFileSync(0, 'utf8').trim());\n"
        "let f = 1n; for (let i = 2n; i <= n; i++) f *= i;\nconsole.log(f.toString());"
    ),
    "java": (
        "import java.util.Scanner;\npublic class Main { public static void main(String[] a) {\n"
        "  long n = new Scanner(System.in).nextLong(), f = 1;\n"
        "  for (long i = 2; i <= n; i++) f *= i;\n  System.out.println(f); } }"
    ),
    "c": (
        '#include <stdio.h>\nint main(void) { long long n, f = 1; scanf("%lld", &n);\n'
        '  for (long long i = 2; i <= n; i++) f *= i; printf("%lld\\n", f); return 0; }'
    ),
    "cpp": (
        "#include <iostream>\nint main() { long long n, f = 1; std::cin >> n;\n"
        "  for (long long i = 2; i <= n; i++) f *= i; std::cout << f << '\\n'; }"
    ),
    "go": (
        'package main\nimport "fmt"\nfunc main() { var n int64; fmt.Scan(&n); f := int64(1)\n'
        "  for i := int64(2); i <= n; i++ { f *= i }; fmt.Println(f) }"
    ),
    "rust": (
        "use std::io::Read;\nfn main() { let mut s = String::new(); std::io::stdin().read_to_string(&mut s).unwrap();\n"
        '  let n: u64 = s.trim().parse().unwrap(); let f: u64 = (1..=n).product(); println!("{}", f); }'
    ),
    "ruby": "n = gets.to_i\nputs (1..n).reduce(1, :*)",
    "php": '<?php $n = (int) trim(fgets(STDIN)); $f = 1; for ($i = 2; $i <= $n; $i++) $f *= $i; echo $f, "\\n";',
    "bash": "read n\nf=1\nfor ((i = 2; i <= n; i++)); do f=$((f * i)); done\necho $f",
}

# Reads one line and prints it reversed.
REVERSE = {
    "python": "print(input()[::-1])",
    "javascript": "const s = require('fs').readFileSync(0, 'utf8').replace(/\\n$/, '');\nconsole.log([...s].reverse().join(''));",
    "java": (
        "import java.util.Scanner;\npublic class Main { public static void main(String[] a) {\n"
        "  String s = new Scanner(System.in).nextLine();\n"
        "  System.out.println(new StringBuilder(s).reverse()); } }"
    ),
    "c": (
        "#include <stdio.h>\n#include <string.h>\nint main(void) { char s[1024]; if (!fgets(s, sizeof s, stdin)) return 1;\n"
        "  size_t n = strcspn(s, \"\\n\"); for (size_t i = n; i > 0; i--) putchar(s[i - 1]); putchar('\\n'); return 0; }"
    ),
    "cpp": (
        "#include <iostream>\n#include <string>\n#include <algorithm>\nint main() { std::string s; std::getline(std::cin, s);\n"
        "  std::reverse(s.begin(), s.end()); std::cout << s << '\\n'; }"
    ),
    "go": (
        'package main\nimport ("bufio"; "fmt"; "os"; "strings")\nfunc main() {\n'
        "  s, _ := bufio.NewReader(os.Stdin).ReadString('\\n'); r := []rune(strings.TrimRight(s, \"\\n\"))\n"
        "  for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 { r[i], r[j] = r[j], r[i] }\n  fmt.Println(string(r)) }"
    ),
    "rust": (
        "fn main() { let mut s = String::new(); std::io::stdin().read_line(&mut s).unwrap();\n"
        "  println!(\"{}\", s.trim_end_matches('\\n').chars().rev().collect::<String>()); }"
    ),
    "ruby": "puts gets.chomp.reverse",
    "php": '<?php echo strrev(rtrim(fgets(STDIN), "\\n")), "\\n";',
    "bash": 'read -r s\nrev=""\nfor ((i = ${#s} - 1; i >= 0; i--)); do rev+="${s:i:1}"; done\necho "$rev"',
}
