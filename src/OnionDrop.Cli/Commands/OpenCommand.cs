using System.CommandLine;
using OnionDrop.Sealing;

namespace OnionDrop.Cli.Commands;

/// <summary>
/// `oniondrop open --key FILE [-o DIR] BLOB...`: opens sealed blobs offline. Each blob becomes a folder in DIR
/// (named from its reference), complete and verified or not at all. One stderr line per refused blob.
/// </summary>
public static class OpenCommand
{
    public static Command Create()
    {
        var keyFile = new Option<string>("--key", "-k") { Description = "Your secret key file (from oniondrop keygen)", Required = true };
        var output = new Option<string>("--output", "-o") { Description = "Directory to open into (default: the current one)", DefaultValueFactory = _ => "." };
        var passphraseFile = new Option<string?>("--passphrase-file") { Description = "Passphrase of a protected key, for scripts (or ONIONDROP_PASSPHRASE); else it is asked at the terminal" };
        var blobs = new Argument<string[]>("BLOB") { Description = "Sealed files (*.sealed) to open", Arity = ArgumentArity.OneOrMore };
        var command = new Command("open", "Open sealed submissions with your secret key, verifying every byte before anything appears.")
        {
            keyFile, output, passphraseFile, blobs,
        };
        command.SetAction(parseResult =>
        {
            var keyPath = parseResult.GetValue(keyFile)!;
            JournalistKey key;
            try
            {
                var fromScript = Passphrases.FromFileOrEnvironment(parseResult.GetValue(passphraseFile));
                key = JournalistKey.Load(keyPath, () => fromScript ?? Passphrases.Ask($"Passphrase for {keyPath}: "));
            }
            catch (Exception e) when (e is FormatException or PassphraseException)
            {
                Console.Error.WriteLine($"oniondrop open: {keyPath}: {e.Message}");
                return 2;
            }

            using (key)
            {
                var outputDirectory = parseResult.GetValue(output)!;
                var refused = 0;
                foreach (var blob in parseResult.GetValue(blobs)!)
                {
                    try
                    {
                        var opened = OpenOne(blob, key, outputDirectory);
                        Console.Out.WriteLine($"{blob}: {opened.Files.Count} file(s) and the message in {opened.Directory}");
                    }
                    catch (Exception e) when (e is SealedFormatException or IOException or UnauthorizedAccessException)
                    {
                        Console.Error.WriteLine($"oniondrop open: {blob}: {OneLine(e.Message)}");
                        refused++;
                    }
                }
                return refused == 0 ? 0 : 1;
            }
        });
        return command;
    }

    private static OpenedSubmission OpenOne(string blob, JournalistKey key, string outputDirectory)
    {
        using var input = new FileStream(blob, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0, FileOptions.SequentialScan);
        var progress = Console.IsErrorRedirected ? null : new TerminalProgress(blob, input.Length);
        try { return SubmissionOpener.Open(input, key, outputDirectory, Path.GetFileName(blob), progress); }
        finally { progress?.Done(); }
    }

    private static string OneLine(string s) => s.ReplaceLineEndings(" ");

    /// <summary>"BLOB: 42%" rewritten in place on a terminal, at most once per percent.</summary>
    private sealed class TerminalProgress(string blob, long total) : IProgress<long>
    {
        private int _shown = -1;

        public void Report(long value)
        {
            var percent = total > 0 ? (int)(value * 100 / total) : 100;
            if (percent == _shown) return;
            _shown = percent;
            Console.Error.Write($"\r{blob}: {percent}%");
        }

        public void Done()
        {
            if (_shown >= 0) Console.Error.Write("\r\x1b[K");
        }
    }
}
