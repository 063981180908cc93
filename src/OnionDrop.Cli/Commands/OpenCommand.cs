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
                var paths = parseResult.GetValue(blobs)!;
                var refused = 0;
                // Blobs are independent: up to one per core is decrypted and verified at a time, and each is then
                // published (fsynced, renamed into view) while others are decrypted, so the disk's latency hides
                // behind the CPU's work and concurrent fsyncs share journal commits. Lines come out in the blobs'
                // order. A terminal shows a blob's progress only when there is one blob.
                using var verifying = new SemaphoreSlim(Environment.ProcessorCount);
                var showProgress = paths.Length == 1 && !Console.IsErrorRedirected;
                var inFlight = new Queue<(string Blob, Task<OpenedSubmission> Opened)>();
                foreach (var blob in paths)
                {
                    inFlight.Enqueue((blob, Task.Factory.StartNew(() => OpenOne(blob, key, outputDirectory, verifying, showProgress), TaskCreationOptions.LongRunning)));
                    while (inFlight.Count > MaxInFlight) refused += Report(inFlight.Dequeue());
                }
                while (inFlight.Count > 0) refused += Report(inFlight.Dequeue());
                // The renames into view are durable before we say so (one directory fsync for every blob).
                if (Directory.Exists(outputDirectory)) OnionDrop.Storage.Posix.FsyncDirectory(outputDirectory);
                return refused == 0 ? 0 : 1;
            }
        });
        return command;
    }

    private const int MaxInFlight = 8;

    private static OpenedSubmission OpenOne(string blob, JournalistKey key, string outputDirectory, SemaphoreSlim verifying, bool showProgress)
    {
        VerifiedSubmission verified;
        verifying.Wait();
        try
        {
            using var input = new FileStream(blob, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0, FileOptions.SequentialScan);
            var progress = showProgress ? new TerminalProgress(blob, input.Length) : null;
            try { verified = SubmissionOpener.Verify(input, key, outputDirectory, Path.GetFileName(blob), progress); }
            finally { progress?.Done(); }
        }
        finally { verifying.Release(); }
        using (verified) return verified.Publish();
    }

    /// <returns>1 if the blob was refused or could not be written (said on stderr in one line), else 0</returns>
    private static int Report((string Blob, Task<OpenedSubmission> Opened) p)
    {
        try
        {
            var opened = p.Opened.GetAwaiter().GetResult();
            Console.Out.WriteLine($"{p.Blob}: {opened.Files.Count} file(s) and the message in {opened.Directory}");
            return 0;
        }
        catch (Exception e) when (e is SealedFormatException or IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"oniondrop open: {p.Blob}: {OneLine(e.Message)}");
            return 1;
        }
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
