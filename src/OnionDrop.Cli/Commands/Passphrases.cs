using System.Text;

namespace OnionDrop.Cli.Commands;

/// <summary>A passphrase could not be had: one line for stderr.</summary>
public sealed class PassphraseException(string reason) : Exception(reason);

/// <summary>Where key passphrases come from: a file or ONIONDROP_PASSPHRASE for scripts, else the terminal.</summary>
public static class Passphrases
{
    public const string EnvironmentVariable = "ONIONDROP_PASSPHRASE";

    /// <summary>The passphrase file's first line (so a trailing newline does not count), else the environment variable, else null.</summary>
    public static string? FromFileOrEnvironment(string? file)
    {
        if (file is not null)
        {
            string text;
            try { text = File.ReadAllText(file, Encoding.UTF8); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new PassphraseException($"cannot read passphrase file: {e.Message}"); }
            var line = text.Split('\n')[0].TrimEnd('\r');
            if (line.Length == 0) throw new PassphraseException($"passphrase file {file} is empty");
            return line;
        }
        // Set but empty is a script's unset variable ("$PASS"), not a wish for no passphrase: refused like an empty file.
        var env = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (env is { Length: 0 }) throw new PassphraseException($"{EnvironmentVariable} is set but empty");
        return env;
    }

    public static string AskNew()
    {
        var first = Ask("New passphrase: ");
        if (first.Length == 0) throw new PassphraseException("empty passphrase");
        if (Ask("Repeat it: ") != first) throw new PassphraseException("the passphrases differ");
        return first;
    }

    public static string Ask(string prompt)
    {
        if (Console.IsInputRedirected) throw NoTerminal();
        // The prompt goes where the journalist looks: stderr, or the terminal itself when stderr goes to a file
        // (`open ... 2>log`), as ssh and gpg do.
        using var terminal = Console.IsErrorRedirected ? OpenTerminal() : null;
        var output = terminal ?? Console.Error;
        output.Write(prompt);
        var sb = new StringBuilder();
        while (true)
        {
            var k = Console.ReadKey(intercept: true);
            if (k.Key == ConsoleKey.Enter) break;
            if (k.Key == ConsoleKey.Backspace) { if (sb.Length > 0) sb.Length--; }
            else if (k.KeyChar != '\0') sb.Append(k.KeyChar);
        }
        output.WriteLine();
        return sb.ToString();
    }

    private static StreamWriter OpenTerminal()
    {
        try { return new StreamWriter(new FileStream("/dev/tty", FileMode.Open, FileAccess.Write)) { AutoFlush = true }; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw NoTerminal(); }
    }

    private static PassphraseException NoTerminal() =>
        new($"no terminal to ask the passphrase on: use --passphrase-file or {EnvironmentVariable}");
}
