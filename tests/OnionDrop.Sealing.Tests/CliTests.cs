using OnionDrop.Testing;

namespace OnionDrop.Sealing.Tests;

/// <summary>`oniondrop keygen` and `oniondrop open` as operators and scripts use them.</summary>
public class CliTests
{
    [Test]
    public async Task KeygenPrintsThePublicKeyLastAndWritesA0600FileOnce()
    {
        using var dir = new TempDirectory();
        var path = dir.Combine("me.key");
        var result = await Oniondrop.RunAsync(["keygen", "-o", path]);
        Assert.That(result.ExitCode, Is.Zero, result.ToString());
        var last = result.Stdout.TrimEnd('\n').Split('\n')[^1];
        using var key = JournalistKey.Load(path);
        Assert.That(RecipientPublicKey.Parse(last), Is.EqualTo(key.PublicKey));
        Assert.That(File.GetUnixFileMode(path), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));

        var before = File.ReadAllText(path);
        var again = await Oniondrop.RunAsync(["keygen", "-o", path]);
        Assert.That(again.ExitCode, Is.Not.Zero);
        Assert.That(again.Stderr.Trim(), Does.StartWith("oniondrop keygen: ").And.Contains("refusing to overwrite"));
        Assert.That(File.ReadAllText(path), Is.EqualTo(before));
    }

    /// <summary>
    /// `open ... 2>log` at a terminal: the passphrase is still asked, on the terminal itself (as ssh and gpg do).
    /// It was refused, "no terminal to ask the passphrase on", as if there were none.
    /// </summary>
    [Test]
    public async Task With_stderr_sent_to_a_file_the_passphrase_is_asked_on_the_terminal()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.Combine("pass"), "s3cret words\n");
        var keygen = await Oniondrop.RunAsync(["keygen", "-o", dir.Combine("me.key"), "--passphrase-file", dir.Combine("pass")]);
        var publicKey = RecipientPublicKey.Parse(keygen.Stdout.TrimEnd().Split('\n')[^1]);
        File.WriteAllBytes(dir.Combine("x.sealed"), await Seal.ToBytesAsync([publicKey], "asked", ("doc.txt", "hello"u8.ToArray())));

        var open = string.Join(' ', new[] { "dotnet", Oniondrop.Dll, "open", "--key", dir.Combine("me.key"), "-o", dir.Combine("out"), dir.Combine("x.sealed") }
            .Select(PseudoTerminal.ShellQuote)) + " 2>" + PseudoTerminal.ShellQuote(dir.Combine("err.log"));
        // What the journalist types reaches the program through the terminal that `script` made.
        var atTerminal = await ChildProcess.RunAsync(PseudoTerminal.StartInfo("sh", ["-c", open]), TimeSpan.FromMinutes(2), stdin: "s3cret words\r");
        Assert.That(atTerminal.ExitCode, Is.Zero, $"{atTerminal}\n--- err.log\n{File.ReadAllText(dir.Combine("err.log"))}");
        Assert.That(atTerminal.Stdout, Does.Contain("Passphrase"), "the prompt, on the terminal");
        Assert.That(File.ReadAllText(Path.Combine(dir.Combine("out"), "ref-1", "doc.txt")), Is.EqualTo("hello"));
    }

    [Test]
    public async Task KeygenWithAPassphraseFileThenOpenWithTheEnvironmentVariable()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.Combine("pass"), "s3cret words\n");
        var keygen = await Oniondrop.RunAsync(["keygen", "-o", dir.Combine("me.key"), "--passphrase-file", dir.Combine("pass")]);
        Assert.That(keygen.ExitCode, Is.Zero, keygen.ToString());
        Assert.That(JournalistKey.IsProtected(dir.Combine("me.key")), Is.True);
        var publicKey = RecipientPublicKey.Parse(keygen.Stdout.TrimEnd().Split('\n')[^1]);

        // A script's "$PASS" left unset must not make a key without a passphrase.
        var emptyEnv = Oniondrop.StartInfo("keygen", "-o", dir.Combine("plain.key"));
        emptyEnv.Environment["ONIONDROP_PASSPHRASE"] = "";
        var refused = await ChildProcess.RunAsync(emptyEnv, TimeSpan.FromMinutes(1));
        Assert.That(refused.ExitCode, Is.Not.Zero);
        Assert.That(refused.Stderr.Trim(), Does.Contain("ONIONDROP_PASSPHRASE is set but empty"));
        Assert.That(File.Exists(dir.Combine("plain.key")), Is.False);

        var blobPath = dir.Combine("x.sealed");
        File.WriteAllBytes(blobPath, await Seal.ToBytesAsync([publicKey], "via env", ("doc.txt", "hello"u8.ToArray())));

        var noPassphrase = await Oniondrop.RunAsync(["open", "--key", dir.Combine("me.key"), "-o", dir.Combine("out"), blobPath]);
        Assert.That(noPassphrase.ExitCode, Is.Not.Zero);
        Assert.That(noPassphrase.Stderr.Trim(), Does.StartWith($"oniondrop open: {dir.Combine("me.key")}: ").And.Contains("no terminal"));

        var psi = Oniondrop.StartInfo("open", "--key", dir.Combine("me.key"), "-o", dir.Combine("out"), blobPath);
        psi.Environment["ONIONDROP_PASSPHRASE"] = "s3cret words";
        var open = await ChildProcess.RunAsync(psi, TimeSpan.FromMinutes(2));
        Assert.That(open.ExitCode, Is.Zero, open.ToString());
        Assert.That(open.Stderr, Is.Empty, "no progress output when stderr is not a terminal");
        Assert.That(File.ReadAllText(Path.Combine(dir.Combine("out"), "ref-1", "doc.txt")), Is.EqualTo("hello"));
        Assert.That(File.ReadAllText(Path.Combine(dir.Combine("out"), "ref-1", "message.txt")), Is.EqualTo("via env"));
    }

    [Test]
    public async Task Open_at_a_terminal_shows_a_blobs_progress_then_clears_it()
    {
        using var dir = new TempDirectory();
        var blob = Path.Combine(RepoPaths.Vectors, "good_two_files.sealed");
        var open = await PseudoTerminal.RunOniondropAsync(["open", "--key", Seal.PrivateCopy("journalist.key", dir), "-o", dir.Combine("out"), blob]);
        Assert.That(open.ExitCode, Is.Zero, open.ToString());
        var said = open.Stdout.IndexOf($"{blob}: 2 file(s)", StringComparison.Ordinal);
        Assert.That(said, Is.GreaterThan(0), open.ToString());
        Assert.That(open.Stdout[..said], Does.Contain($"\r{blob}: 100%").And.EndWith("\r\x1b[K"), "progress shown, then cleared before the result");
    }

    /// <summary>
    /// keygen on a full disk: CreateNew made the file, then the write failed. The empty file stayed, keygen said
    /// "FILE already exists; refusing to overwrite a key (No space left on device ...)" of a file it had made itself,
    /// and every keygen after it refused the same way until the journalist deleted it.
    /// </summary>
    [Test]
    public async Task Keygen_on_a_full_disk_leaves_no_key_file_and_says_why()
    {
        using var dir = new TempDirectory();
        using var disk = await LoopFileSystem.MountAsync(dir.Path, 8 << 20);
        disk.Fill(leaveFree: 0);
        var path = Path.Combine(disk.MountPoint, "me.key");

        var keygen = await Oniondrop.RunAsync(["keygen", "-o", path]);

        Assert.That(keygen.ExitCode, Is.EqualTo(1), keygen.ToString());
        Assert.That(keygen.Stderr, Does.Contain("No space left on device").And.Not.Contain("already exists"));
        Assert.That(keygen.Stdout, Is.Empty, "no public key handed out");
        Assert.That(File.Exists(path), Is.False, "no empty key file left to refuse the next keygen");
    }

    /// <summary>
    /// Ctrl-C or SIGTERM (a shutdown) while open verifies a blob: it stops, deletes its working folder (unverified
    /// plaintext) and says so, exit 130. The runtime's default ended it at once (exit 143, not a word), leaving the
    /// hidden working folder in the output directory until some later open there. The blob comes through a FIFO so
    /// that the signal lands mid-blob, when the test chooses.
    /// </summary>
    [TestCase(PosixProcess.SIGTERM)]
    [TestCase(PosixProcess.SIGINT)]
    public async Task Open_interrupted_mid_blob_leaves_nothing_behind_and_says_so(int signal)
    {
        using var dir = new TempDirectory();
        using var key = JournalistKey.Generate();
        key.Save(dir.Combine("me.key"));
        var blob = await Seal.ToBytesAsync([key.PublicKey], "hello", ("big.bin", Seal.Bytes(4 << 20, 7)));
        var fifo = dir.Combine("blob.sealed");
        Assert.That((await ChildProcess.RunAsync("mkfifo", [fifo])).ExitCode, Is.Zero);
        var output = dir.Combine("out");

        var psi = Oniondrop.StartInfo("open", "--key", dir.Combine("me.key"), "-o", output, fifo);
        // As in a terminal, Ctrl-C is not ignored: a test run started in the background (`scripts/test &`) passes SIGINT
        // down ignored, and the runtime keeps it so. env execs in place, so open.Id is oniondrop's own.
        psi.ArgumentList.Insert(0, psi.FileName);
        psi.ArgumentList.Insert(0, "--default-signal=INT");
        psi.FileName = "env";
        using var open = System.Diagnostics.Process.Start(psi)!;
        var stderr = open.StandardError.ReadToEndAsync();
        var stdout = open.StandardOutput.ReadToEndAsync();
        await using (var writer = new FileStream(fifo, FileMode.Open, FileAccess.Write))
        {
            await writer.WriteAsync(blob.AsMemory(0, 1 << 20));
            await writer.FlushAsync();
            for (var waited = 0; !(Directory.Exists(output) && Directory.GetDirectories(output).Length > 0) && waited < 300; waited++) await Task.Delay(100);
            Assert.That(Directory.GetDirectories(output), Has.Length.EqualTo(1), "its working folder, mid-blob");
            PosixProcess.Signal(open.Id, signal);
            await Task.Delay(500);
            try { await writer.WriteAsync(blob.AsMemory(1 << 20)); }
            catch (IOException) { }   // it stopped reading: gone
        }
        await open.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));

        Assert.That(open.ExitCode, Is.EqualTo(130), await stderr);
        Assert.That(await stderr, Does.Contain("oniondrop open: interrupted: 1 of 1 blob(s) not opened, nothing of them left in"));
        Assert.That(Directory.Exists(output), Is.False, "no working folder, nothing in view, and so not the folder it made either");
        _ = await stdout;
    }

    [Test]
    public async Task OpenSaysWhetherThereWasAMessage()
    {
        using var dir = new TempDirectory();
        using var key = JournalistKey.Generate();
        key.Save(dir.Combine("me.key"));
        File.WriteAllBytes(dir.Combine("with.sealed"), await Seal.ToBytesAsync([key.PublicKey], "hello there", ("a.txt", "a"u8.ToArray())));
        File.WriteAllBytes(dir.Combine("without.sealed"), await Seal.ToBytesAsync([key.PublicKey], "", ("b.txt", "b"u8.ToArray())));

        var open = await Oniondrop.RunAsync(["open", "--key", dir.Combine("me.key"), "-o", dir.Combine("out"), dir.Combine("with.sealed"), dir.Combine("without.sealed")]);
        Assert.That(open.ExitCode, Is.Zero, open.ToString());
        Assert.That(open.Stdout, Does.Contain("with.sealed: 1 file(s) and the message in "));
        Assert.That(open.Stdout, Does.Contain("without.sealed: 1 file(s), no message, in "));
    }

    /// <summary>Seals a.sealed (one file and <paramref name="message"/>), opens it into out/, then opens it again.</summary>
    private static async Task<(string[] Args, ProcessResult Again)> OpenTwiceAsync(TempDirectory dir, JournalistKey key, string message)
    {
        key.Save(dir.Combine("me.key"));
        File.WriteAllBytes(dir.Combine("a.sealed"), await Seal.ToBytesAsync([key.PublicKey], message, ("a.txt", "a"u8.ToArray())));
        string[] args = ["open", "--key", dir.Combine("me.key"), "-o", dir.Combine("out"), dir.Combine("a.sealed")];
        Assert.That((await Oniondrop.RunAsync(args)).ExitCode, Is.Zero);
        return (args, await Oniondrop.RunAsync(args));
    }

    [Test]
    public async Task OpeningAnInboxAgainSkipsWhatIsAlreadyOpenedButNotAnotherBlobClaimingItsReference()
    {
        using var dir = new TempDirectory();
        using var key = JournalistKey.Generate();
        var (args, again) = await OpenTwiceAsync(dir, key, "hello");
        Assert.That(again.ExitCode, Is.Zero, again.ToString());
        Assert.That(again.Stdout, Does.Contain($"a.sealed: already opened in {Path.Combine(dir.Combine("out"), "ref-1")}; skipped"));
        Assert.That(Directory.GetDirectories(dir.Combine("out")).Select(Path.GetFileName), Is.EqualTo(new[] { "ref-1" }));

        // Same reference (both sealed as "ref-1"), other content: opened beside, never hidden behind the first.
        File.WriteAllBytes(dir.Combine("b.sealed"), await Seal.ToBytesAsync([key.PublicKey], "hello", ("a.txt", "b"u8.ToArray())));
        var other = await Oniondrop.RunAsync(["open", "--key", dir.Combine("me.key"), "-o", dir.Combine("out"), dir.Combine("b.sealed")]);
        Assert.That(other.Stdout, Does.Contain("b.sealed: 1 file(s) and the message in ").And.Contain("ref-1 (2)"), other.ToString());
    }

    /// <summary>The saved message was read back as text, which drops a leading U+FEFF: it never matched, and each run added a copy.</summary>
    [Test]
    public async Task A_message_starting_with_a_byte_order_mark_is_recognised_as_already_opened()
    {
        using var dir = new TempDirectory();
        using var key = JournalistKey.Generate();
        var (args, again) = await OpenTwiceAsync(dir, key, "\uFEFFhello");
        Assert.That(again.Stdout, Does.Contain("a.sealed: already opened in "), again.ToString());
        Assert.That(Directory.GetDirectories(dir.Combine("out")).Select(Path.GetFileName), Is.EqualTo(new[] { "ref-1" }));
        Assert.That(File.ReadAllBytes(Path.Combine(dir.Combine("out"), "ref-1", "message.txt")), Is.EqualTo("\uFEFFhello"u8.ToArray()), "the message as sent");

        // A folder opened before manifest.json held the message's hash is recognised by its message.txt, as bytes.
        var manifest = Path.Combine(dir.Combine("out"), "ref-1", "manifest.json");
        var older = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(manifest))!.AsObject();
        Assert.That(older.Remove("messageSha256"), Is.True);
        File.WriteAllText(manifest, older.ToJsonString());
        var third = await Oniondrop.RunAsync(args);
        Assert.That(third.Stdout, Does.Contain("a.sealed: already opened in "), third.ToString());
        Assert.That(Directory.GetDirectories(dir.Combine("out")).Select(Path.GetFileName), Is.EqualTo(new[] { "ref-1" }));
    }

    /// <summary>Publishers ran "already there?" and the rename unserialised: the same blob twice in one run made "ref-1 (2)".</summary>
    [Test]
    public async Task The_same_submission_given_twice_in_one_run_is_opened_once()
    {
        using var dir = new TempDirectory();
        using var key = JournalistKey.Generate();
        key.Save(dir.Combine("me.key"));
        File.WriteAllBytes(dir.Combine("a.sealed"), await Seal.ToBytesAsync([key.PublicKey], "hello", ("a.txt", new byte[200_000])));
        Directory.CreateDirectory(dir.Combine("copy"));
        File.Copy(dir.Combine("a.sealed"), dir.Combine("copy", "a.sealed"));

        var open = await Oniondrop.RunAsync(["open", "--key", dir.Combine("me.key"), "-o", dir.Combine("out"),
            dir.Combine("a.sealed"), dir.Combine("a.sealed"), dir.Combine("copy", "a.sealed"), dir.Combine("a.sealed")]);

        Assert.That(open.ExitCode, Is.Zero, open.ToString());
        Assert.That(Directory.GetDirectories(dir.Combine("out")).Select(Path.GetFileName), Is.EqualTo(new[] { "ref-1" }), open.ToString());
        var lines = open.Stdout.TrimEnd('\n').Split('\n');
        Assert.That(lines.Count(l => l.Contains(": 1 file(s) and the message in ")), Is.EqualTo(1), open.Stdout);
        Assert.That(lines.Count(l => l.Contains(": already opened in ")), Is.EqualTo(3), open.Stdout);
    }

    /// <summary>
    /// Two `open` runs into one folder at once (an inbox opened again while the last open still runs, or a script
    /// and a journalist): each looked for the submission in view, found nothing, and renamed its own copy in, the
    /// second as "ref-N (2)". The within-process lock could not see the other process. Many small blobs, so that
    /// the runs' publishing overlaps.
    /// </summary>
    [Test]
    public async Task Opens_run_at_once_into_one_folder_make_one_copy_of_each_submission()
    {
        using var dir = new TempDirectory();
        using var key = JournalistKey.Generate();
        key.Save(dir.Combine("me.key"));
        const int Blobs = 80, Runs = 4;
        var blobs = new List<string>();
        for (var i = 1; i <= Blobs; i++)
        {
            var output = new MemoryStream();
            await using (var sealer = new SubmissionSealer(output, [key.PublicKey]))
            {
                await sealer.BeginFileAsync("a.txt", "text/plain");
                await sealer.WriteAsync(System.Text.Encoding.UTF8.GetBytes($"file {i}"));
                await sealer.EndFileAsync();
                await sealer.CompleteAsync($"ref-{i}", $"message {i}", Seal.ReceivedAt);
            }
            blobs.Add(dir.Combine($"ref-{i}.sealed"));
            File.WriteAllBytes(blobs[^1], output.ToArray());
        }

        // Each round hit the race about one time in three here: five rounds, each into a fresh folder.
        for (var round = 1; round <= 5; round++)
        {
            var output = dir.Combine($"out-{round}");
            var runs = await Task.WhenAll(Enumerable.Range(0, Runs).Select(_ =>
                Oniondrop.RunAsync(["open", "--key", dir.Combine("me.key"), "-o", output, .. blobs])));

            Assert.That(runs.Select(r => r.ExitCode), Is.All.Zero, string.Join("\n", runs.Select(r => r.ToString())));
            Assert.That(Directory.GetFileSystemEntries(output).Select(Path.GetFileName).Order(),
                Is.EqualTo(Enumerable.Range(1, Blobs).Select(i => $"ref-{i}").Order()), $"round {round}: one folder per submission, no \"(2)\", nothing hidden left");
            var lines = runs.SelectMany(r => r.Stdout.TrimEnd('\n').Split('\n')).ToArray();
            Assert.That(lines.Count(l => l.Contains(": 1 file(s) and the message in ")), Is.EqualTo(Blobs), "each opened by one run");
            Assert.That(lines.Count(l => l.Contains(": already opened in ")), Is.EqualTo(Blobs * (Runs - 1)), "and skipped by the others");
        }
    }

    /// <summary>
    /// "Already opened" is the folder's manifest.json, not every file byte for byte: a journalist who annotated, renamed
    /// or deleted files there got a fresh copy at each re-open. A folder removed (or renamed) is opened again.
    /// </summary>
    [Test]
    public async Task A_folder_the_journalist_has_worked_in_is_still_recognised_and_one_removed_comes_back()
    {
        using var dir = new TempDirectory();
        using var key = JournalistKey.Generate();
        key.Save(dir.Combine("me.key"));
        File.WriteAllBytes(dir.Combine("a.sealed"), await Seal.ToBytesAsync([key.PublicKey], "hello", ("a.txt", "a"u8.ToArray()), ("b.txt", "b"u8.ToArray())));
        string[] args = ["open", "--key", dir.Combine("me.key"), "-o", dir.Combine("out"), dir.Combine("a.sealed")];
        Assert.That((await Oniondrop.RunAsync(args)).ExitCode, Is.Zero);
        var folder = Path.Combine(dir.Combine("out"), "ref-1");

        File.AppendAllText(Path.Combine(folder, "a.txt"), "\nmy notes");
        File.Move(Path.Combine(folder, "b.txt"), Path.Combine(folder, "b - checked.txt"));
        File.AppendAllText(Path.Combine(folder, "message.txt"), "\ncalled them back");
        File.WriteAllText(Path.Combine(folder, "notes.txt"), "to do");
        var again = await Oniondrop.RunAsync(args);
        Assert.That(again.ExitCode, Is.Zero, again.ToString());
        Assert.That(again.Stdout, Does.Contain($"a.sealed: already opened in {folder}; skipped"), again.ToString());
        Assert.That(Directory.GetDirectories(dir.Combine("out")).Select(Path.GetFileName), Is.EqualTo(new[] { "ref-1" }));
        Assert.That(File.ReadAllText(Path.Combine(folder, "a.txt")), Is.EqualTo("a\nmy notes"), "the journalist's work untouched");

        Directory.Delete(folder, recursive: true);
        var back = await Oniondrop.RunAsync(args);
        Assert.That(back.Stdout, Does.Contain($"a.sealed: 2 file(s) and the message in {folder}"), back.ToString());
        Assert.That(File.ReadAllText(Path.Combine(folder, "b.txt")), Is.EqualTo("b"));
    }

    /// <summary>A directory given for a blob or a key was "Access to the path is denied"; a huge file given as the key was read whole (6.5 GB for a 1.2 GB .sealed).</summary>
    [Test]
    public async Task A_directory_or_a_huge_file_given_by_mistake_is_named_for_what_it_is()
    {
        using var dir = new TempDirectory();
        var key = Seal.PrivateCopy("journalist.key", dir);
        Directory.CreateDirectory(dir.Combine("inbox"));
        var inbox = await Oniondrop.RunAsync(["open", "--key", key, "-o", dir.Combine("out"), dir.Combine("inbox")]);
        Assert.That(inbox.ExitCode, Is.EqualTo(1), inbox.ToString());
        Assert.That(inbox.Stderr.Trim(), Is.EqualTo($"oniondrop open: {dir.Combine("inbox")}: is a directory, not a sealed file (did you mean {dir.Combine("inbox", "*.sealed")}?)"));

        var blob = Path.Combine(RepoPaths.Vectors, "good_two_files.sealed");
        var keyDir = await Oniondrop.RunAsync(["open", "--key", dir.Combine("inbox"), "-o", dir.Combine("out"), blob]);
        Assert.That(keyDir.ExitCode, Is.EqualTo(2), keyDir.ToString());
        Assert.That(keyDir.Stderr.Trim(), Is.EqualTo($"oniondrop open: {dir.Combine("inbox")}: is a directory, not a key file"), "no warning about a directory's modes");

        var huge = dir.Combine("huge.sealed");
        using (var f = File.Create(huge)) f.SetLength(200L << 20); // sparse: no disk used
        File.SetUnixFileMode(huge, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var hugeKey = await Oniondrop.RunAsync(["open", "--key", huge, "-o", dir.Combine("out"), blob]);
        Assert.That(hugeKey.ExitCode, Is.EqualTo(2), hugeKey.ToString());
        Assert.That(hugeKey.Stderr.Trim(), Is.EqualTo($"oniondrop open: {huge}: not an OnionDrop secret key file (over 16 KiB; a key file is a few hundred bytes)"));
    }

    /// <summary>It asked the new passphrase twice (or, without a terminal, said there was none) before saying the key file exists.</summary>
    [Test]
    public async Task Keygen_onto_an_existing_file_says_so_before_asking_a_passphrase()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.Combine("me.key"), "mine");
        var again = await Oniondrop.RunAsync(["keygen", "--ask-passphrase", "-o", dir.Combine("me.key")]);
        Assert.That(again.ExitCode, Is.EqualTo(1), again.ToString());
        Assert.That(again.Stderr.Trim(), Is.EqualTo($"oniondrop keygen: {dir.Combine("me.key")} already exists; refusing to overwrite a key"));
        Assert.That(File.ReadAllText(dir.Combine("me.key")), Is.EqualTo("mine"));
    }

    [Test]
    public async Task OpenIntoAFileSaysSoOnceBeforeTouchingAnyBlob()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.Combine("not-a-dir"), "x");
        var blobs = Directory.GetFiles(RepoPaths.Vectors, "good_*.sealed").Take(2).ToArray();
        var result = await Oniondrop.RunAsync(["open", "--key", Seal.PrivateCopy("journalist.key", dir), "-o", dir.Combine("not-a-dir"), .. blobs]);
        Assert.That(result.ExitCode, Is.EqualTo(2));
        Assert.That(result.Stderr.Trim(), Is.EqualTo($"oniondrop open: {dir.Combine("not-a-dir")}: is a file, not a directory"), "one line, not one per blob");
    }

    /// <summary>
    /// A missing blob or key said .NET's "Could not find file '...'." (and "cannot read key file: " before it); a shell
    /// glob that matched nothing reaches open as itself, `empty/*.sealed`, which deserves the likely reason.
    /// </summary>
    [Test]
    public async Task OpenWithAMissingBlobSaysSoInOneLine()
    {
        using var dir = new TempDirectory();
        var key = Seal.PrivateCopy("journalist.key", dir);
        var missing = dir.Combine("nope.sealed");
        var result = await Oniondrop.RunAsync(["open", "--key", key, "-o", dir.Combine("out"), missing]);
        Assert.That(result.ExitCode, Is.EqualTo(1), result.ToString());
        Assert.That(result.Stderr.Trim(), Is.EqualTo($"oniondrop open: {missing}: no such file"));

        Directory.CreateDirectory(dir.Combine("empty"));
        var pattern = dir.Combine("empty", "*.sealed");
        var unmatched = await Oniondrop.RunAsync(["open", "--key", key, "-o", dir.Combine("out"), pattern]);
        Assert.That(unmatched.ExitCode, Is.EqualTo(1), unmatched.ToString());
        Assert.That(unmatched.Stderr.Trim(), Is.EqualTo($"oniondrop open: {pattern}: no such file (a pattern that matched nothing: is the folder empty?)"));

        var noKey = dir.Combine("nosuch.key");
        var blob = Path.Combine(RepoPaths.Vectors, "good_two_files.sealed");
        var open = await Oniondrop.RunAsync(["open", "--key", noKey, "-o", dir.Combine("out"), blob]);
        Assert.That(open.ExitCode, Is.EqualTo(2), open.ToString());
        Assert.That(open.Stderr.Trim(), Is.EqualTo($"oniondrop open: key file {noKey}: no such file"));
        var fetch = await Oniondrop.RunAsync(["fetch", "--via", "true", "--open", "--key", noKey, "-o", dir.Combine("out")]);
        Assert.That(fetch.ExitCode, Is.EqualTo(2), fetch.ToString());
        Assert.That(fetch.Stderr.Trim(), Is.EqualTo($"oniondrop fetch: key file {noKey}: no such file"), "fetch --open reads the key the same way");
    }

    /// <summary>
    /// It said "none of its 1 recipient stanza(s) is for it", jargon with no next step, and left behind the empty
    /// output folder it had made.
    /// </summary>
    [Test]
    public async Task A_blob_sealed_to_other_keys_says_so_in_plain_words_and_leaves_no_folder_it_made()
    {
        using var dir = new TempDirectory();
        var key = Seal.PrivateCopy("journalist.key", dir);
        var blob = Path.Combine(RepoPaths.Vectors, "fail_wrong_key.sealed");
        var open = await Oniondrop.RunAsync(["open", "--key", key, "-o", dir.Combine("opened"), blob]);
        Assert.That(open.ExitCode, Is.EqualTo(1), open.ToString());
        Assert.That(open.Stderr.Trim(), Is.EqualTo($"oniondrop open: {blob}: sealed to 1 other key, not to this one (odpk1ajfyzcr...): " +
            "if it should be yours, ask the operator whether the server's Recipients list your public key (a submission is sealed only to the keys listed when it arrived)"));
        Assert.That(Directory.Exists(dir.Combine("opened")), Is.False, "an empty folder it made is left behind");

        using var others = JournalistKey.Generate();
        using var third = JournalistKey.Generate();
        File.WriteAllBytes(dir.Combine("two.sealed"), await Seal.ToBytesAsync([others.PublicKey, third.PublicKey], "m", ("a.txt", "a"u8.ToArray())));
        Directory.CreateDirectory(dir.Combine("mine"));
        var two = await Oniondrop.RunAsync(["open", "--key", key, "-o", dir.Combine("mine"), dir.Combine("two.sealed")]);
        Assert.That(two.Stderr, Does.Contain(": sealed to 2 other keys, not to this one ("), two.ToString());
        Assert.That(Directory.Exists(dir.Combine("mine")), Is.True, "a folder that was there before is not its to remove");
    }

    /// <summary>A cut or altered blob gave the reason ("chunk 3 (the last) fails authentication: ...") and no next step.</summary>
    [TestCase("fail_truncated_mid_chunk", true)]
    [TestCase("fail_bitflip_body", true)]
    [TestCase("fail_bitflip_stanza", true)]
    [TestCase("fail_trailing_garbage", true)]
    [TestCase("fail_truncated_at_chunk_boundary", true)]
    [TestCase("fail_truncated_header", true)]
    [TestCase("fail_empty", true)]
    [TestCase("fail_wrong_key", false)]
    [TestCase("fail_not_sealed", false)]
    [TestCase("fail_unknown_version", false)]
    [TestCase("fail_manifest_member_twice", false)]
    public async Task A_damaged_blob_is_refused_with_the_way_to_another_copy(string vector, bool damaged)
    {
        using var dir = new TempDirectory();
        var blob = Path.Combine(RepoPaths.Vectors, vector + ".sealed");
        var open = await Oniondrop.RunAsync(["open", "--key", Seal.PrivateCopy("journalist.key", dir), "-o", dir.Combine("out"), blob]);
        Assert.That(open.ExitCode, Is.EqualTo(1), open.ToString());
        const string advice = ": this copy is damaged (fetch it again if the server still has it, or ask a colleague for theirs); nothing of it was opened";
        var line = open.Stderr.Trim();
        Assert.That(line, Does.StartWith($"oniondrop open: {blob}: ").And.Not.Contain("\n"));
        Assert.That(line.EndsWith(advice), Is.EqualTo(damaged), line);
        Assert.That(line.IndexOf(advice), Is.EqualTo(line.LastIndexOf(advice)), "said once");
        if (vector == "fail_truncated_mid_chunk")
            Assert.That(line, Is.EqualTo($"oniondrop open: {blob}: chunk 3 (the last) fails authentication: truncated mid-chunk, corrupted, or followed by trailing data{advice}"));
    }

    /// <summary>
    /// A blob whose header names this key, but whose part for it (the submission's key, sealed to this one) does not
    /// open. The key is never the cause: a key file's secret is checked against its public key when it is read, and the
    /// name in the header is derived from that public key. So the part was altered (a flipped bit: the vector), or is
    /// another key's with this key's name written over it. It said "the recipient stanza for this key does not decrypt:
    /// header corrupted", jargon to a journalist at an offline laptop.
    /// </summary>
    [Test]
    public async Task A_blob_whose_part_for_this_key_was_altered_says_so_in_plain_words()
    {
        using var dir = new TempDirectory();
        var keyFile = Seal.PrivateCopy("journalist.key", dir);
        using var key = JournalistKey.Load(keyFile);
        using var other = JournalistKey.Generate();
        var renamed = dir.Combine("renamed.sealed");
        var blob = await Seal.ToBytesAsync([other.PublicKey], "m", ("a.txt", "a"u8.ToArray()));
        key.PublicKey.KeyId.Span.CopyTo(blob.AsSpan(SealedFormat.PreambleLength + SealedFormat.RecipientCountLength));
        File.WriteAllBytes(renamed, blob);

        foreach (var path in new[] { Path.Combine(RepoPaths.Vectors, "fail_bitflip_stanza.sealed"), renamed })
        {
            var open = await Oniondrop.RunAsync(["open", "--key", keyFile, "-o", dir.Combine("out"), path]);
            Assert.That(open.ExitCode, Is.EqualTo(1), open.ToString());
            Assert.That(open.Stderr.Trim(), Is.EqualTo($"oniondrop open: {path}: sealed to this key (odpk1ajfyzcr...), but the part only this key " +
                "unlocks has been altered (the key is fine): this copy is damaged (fetch it again if the server still has it, or ask a colleague for theirs); " +
                "nothing of it was opened"));
            Assert.That(Directory.Exists(dir.Combine("out")), Is.False, open.ToString());
        }
    }

    [Test]
    public async Task A_key_file_others_can_read_is_warned_about_once_and_still_opens()
    {
        using var dir = new TempDirectory();
        var key = Seal.PrivateCopy("journalist.key", dir);
        var blob = Path.Combine(RepoPaths.Vectors, "good_two_files.sealed");
        File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        File.CreateSymbolicLink(dir.Combine("linked.key"), key);

        var open = await Oniondrop.RunAsync(["open", "--key", dir.Combine("linked.key"), "-o", dir.Combine("out"), blob]);
        Assert.That(open.ExitCode, Is.Zero, open.ToString());
        Assert.That(open.Stderr.Trim(), Is.EqualTo($"oniondrop open: warning: {dir.Combine("linked.key")} (a link to {key}) can be read by others (mode 0644): " +
                                                   $"a secret key should be yours alone (chmod 600 {dir.Combine("linked.key")})"));

        File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var quiet = await Oniondrop.RunAsync(["open", "--key", dir.Combine("linked.key"), "-o", dir.Combine("out"), blob]);
        Assert.That(quiet.Stderr, Is.Empty, "a link to a 0600 key is the key's own business");
    }

    /// <summary>A public key given as --key was first warned about as a secret key others can read ("chmod 600 pub"), then refused.</summary>
    [Test]
    public async Task A_public_key_given_as_the_key_is_named_without_a_warning_about_its_modes()
    {
        using var dir = new TempDirectory();
        var pub = dir.Combine("pub");
        File.WriteAllText(pub, "odpk1ajfyzcrk6ix6jswfzggwkapwsymi2aa4c3577thdju2eez6tlvpich2aqm\n");
        File.SetUnixFileMode(pub, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        var blob = Path.Combine(RepoPaths.Vectors, "good_two_files.sealed");
        var open = await Oniondrop.RunAsync(["open", "--key", pub, "-o", dir.Combine("out"), blob]);
        Assert.That(open.ExitCode, Is.EqualTo(2), open.ToString());
        Assert.That(open.Stderr.Trim(), Is.EqualTo($"oniondrop open: {pub}: that is a public key; opening needs the secret key file"));

        // A protected key others can read is still warned about, before its passphrase is asked.
        var loose = Seal.PrivateCopy("journalist-protected.key", dir);
        File.SetUnixFileMode(loose, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
        var noPassphrase = await Oniondrop.RunAsync(["open", "--key", loose, "-o", dir.Combine("out"), blob]);
        Assert.That(noPassphrase.ExitCode, Is.EqualTo(2), noPassphrase.ToString());
        var lines = noPassphrase.Stderr.TrimEnd().Split('\n');
        Assert.That(lines, Has.Length.EqualTo(2), noPassphrase.ToString());
        Assert.That(lines[0], Is.EqualTo($"oniondrop open: warning: {loose} can be read by others (mode 0604): a secret key should be yours alone (chmod 600 {loose})"));
        Assert.That(lines[1], Does.StartWith($"oniondrop open: {loose}: ").And.Contains("no terminal"));
    }

    [Test]
    public async Task Keygen_makes_the_key_files_name_durable_before_it_prints_the_public_key()
    {
        using var dir = new TempDirectory();
        var path = dir.Combine("me.key");
        var trace = dir.Combine("strace.txt");
        var run = await ChildProcess.RunAsync(ChildProcess.StartInfo("strace", ["-f", "-qq", "-e", "trace=openat,fsync,fdatasync,close,write", "-o", trace, "dotnet", Oniondrop.Dll, "keygen", "-o", path]), TimeSpan.FromMinutes(1));
        Assert.That(run.ExitCode, Is.Zero, run.ToString());
        var calls = StraceLog.Parse(File.ReadLines(trace));
        var keySynced = calls.Single(c => c.Name is "fsync" or "fdatasync" && c.Path == path);
        var printed = calls.First(c => c.Name == "write" && c.Args.Contains("odpk1"));
        Assert.That(calls.Where(c => c.Name == "fsync" && c.Path == dir.Path && keySynced.EndedBefore(c) && c.EndedBefore(printed)), Is.Not.Empty,
            "the folder holding the new key fsynced after the key and before the public key is shown");
    }
}
